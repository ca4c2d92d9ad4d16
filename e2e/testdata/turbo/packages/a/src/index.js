module.exports = () => 'a: hello from the fabrik turbo fixture';
