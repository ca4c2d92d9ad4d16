module.exports = () => 'b: depends on a';
