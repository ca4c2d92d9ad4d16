// Depends on a's build (turbo runs ^build first): reads a's output, so a
// cache hit for a must restore a's dist for b to build.
const fs = require('fs');
const path = require('path');

const fromA = fs.readFileSync(path.join(__dirname, '..', 'a', 'dist', 'index.js'), 'utf8');
const dist = path.join(__dirname, 'dist');
fs.rmSync(dist, { recursive: true, force: true });
fs.mkdirSync(dist, { recursive: true });
fs.writeFileSync(path.join(dist, 'index.js'), fs.readFileSync(path.join(__dirname, 'src', 'index.js'), 'utf8') + '\n// from a:\n' + fromA);
console.log('fabrik-e2e-turbo b built');
