// Deterministic build: copies src into dist plus a ~1 MB generated file, so
// the cached artifact spans many network packets.
const fs = require('fs');
const path = require('path');

const dist = path.join(__dirname, 'dist');
fs.rmSync(dist, { recursive: true, force: true });
fs.mkdirSync(dist, { recursive: true });
fs.copyFileSync(path.join(__dirname, 'src', 'index.js'), path.join(dist, 'index.js'));
const lines = [];
for (let i = 0; i < 120000; i++) lines.push(`a line ${i}`);
fs.writeFileSync(path.join(dist, 'big.txt'), lines.join('\n') + '\n');
console.log('fabrik-e2e-turbo a built');
