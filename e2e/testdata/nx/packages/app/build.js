// Deterministic "build": copies the sources into dist and adds a ~1 MB file,
// so the cached artifact is bigger than one network packet.
const fs = require('fs');
const path = require('path');

const src = path.join(__dirname, 'src');
const dist = path.join(__dirname, 'dist');
fs.rmSync(dist, { recursive: true, force: true });
fs.mkdirSync(dist, { recursive: true });
for (const name of fs.readdirSync(src).sort()) {
  fs.copyFileSync(path.join(src, name), path.join(dist, name));
}
const lines = [];
for (let i = 0; i < 120000; i++) lines.push(`line ${i}`);
fs.writeFileSync(path.join(dist, 'big.txt'), lines.join('\n') + '\n');
console.log('fabrik-e2e-nx build done');
