// Builds the addon with node-gyp against the running Node's own headers, so no header download is
// ever attempted (the build machine may be offline).
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const prefix = path.dirname(path.dirname(process.execPath));
const nodedir = process.env.NODE_DIR ?? prefix;
if (!fs.existsSync(path.join(nodedir, 'include', 'node', 'node_api.h'))) {
  console.error(`Node headers not found under ${nodedir}/include/node; set NODE_DIR to the Node installation prefix`);
  process.exit(1);
}
const gyp = require.resolve('node-gyp/bin/node-gyp.js');
execFileSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`, `--jobs=${require('node:os').availableParallelism()}`], {
  cwd: __dirname,
  stdio: 'inherit',
});
