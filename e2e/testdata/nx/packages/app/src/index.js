// Edit this file (or set FABRIK_E2E_SALT through a changed input) to get a new cache key.
module.exports = () => 'hello from the fabrik nx fixture';
