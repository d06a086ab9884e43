// Tells binding.gyp where libtorch is: $LIBTORCH when set (e.g. the `torch` folder of a pip CUDA build:
// <site-packages>/torch), else the pip PyTorch 2.x in .venv-torch when scripts/setup-reference.sh installed
// one (newer oneDNN kernels, fused attention), else Debian's system libtorch.
//   node torch-config.cjs include|libs|abi|dir|openmp
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const what = process.argv[2];
const repo = path.resolve(__dirname, '..');

function venvTorch() {
  const lib = path.join(repo, '.venv-torch', 'lib');
  if (!fs.existsSync(lib)) return undefined;
  for (const python of fs.readdirSync(lib).filter((d) => d.startsWith('python3')).sort().reverse()) {
    const dir = path.join(lib, python, 'site-packages', 'torch');
    if (fs.existsSync(path.join(dir, 'lib', 'libtorch.so')) && fs.existsSync(path.join(dir, 'include', 'torch'))) return dir;
  }
  return undefined;
}

function systemLayout() {
  const multiarch = fs.existsSync('/usr/lib/x86_64-linux-gnu/libtorch.so') ? '/usr/lib/x86_64-linux-gnu' : '/usr/lib/aarch64-linux-gnu';
  return { dir: '/usr', include: ['/usr/include', '/usr/include/torch/csrc/api/include'], lib: multiarch };
}

function customLayout(dir) {
  return { dir, include: [path.join(dir, 'include'), path.join(dir, 'include/torch/csrc/api/include')], lib: path.join(dir, 'lib') };
}

const root = process.env.LIBTORCH ? path.resolve(process.env.LIBTORCH) : venvTorch();
const layout = root ? customLayout(root) : systemLayout();
if (!fs.existsSync(path.join(layout.lib, 'libtorch.so'))) {
  console.error(`libtorch not found in ${layout.lib}: install Debian's libtorch-dev or set LIBTORCH=<dir with include/ and lib/>`);
  process.exit(1);
}

const libs = ['torch', 'torch_cpu', 'c10'];
for (const optional of ['torch_cuda', 'c10_cuda']) {
  if (fs.existsSync(path.join(layout.lib, `lib${optional}.so`))) libs.push(optional);
}

/**
 * How the addon links OpenMP: with the runtime libtorch_cpu itself needs, so that its parallel regions and
 * libtorch's share one thread pool. That is the system's libgomp.so.1 (plain -fopenmp) unless libtorch ships
 * its own under a hashed name (libgomp-<hash>.so.1, as some pip wheels do): then that file.
 */
function openmpLink() {
  let dynamic = '';
  try {
    dynamic = execFileSync('readelf', ['-d', path.join(layout.lib, 'libtorch_cpu.so')], { encoding: 'utf8' });
  } catch {
    return '-fopenmp';
  }
  const needed = /\[(libgomp[^\]]*)\]/.exec(dynamic)?.[1];
  if (!needed || needed === 'libgomp.so.1') return '-fopenmp';
  const file = [layout.lib, path.join(layout.lib, '..', '..', 'torch.libs')].map((dir) => path.join(dir, needed)).find((f) => fs.existsSync(f));
  return file ?? '-fopenmp';
}

if (what === 'include') console.log(layout.include.join(' '));
// --no-as-needed keeps libtorch_cuda linked although no symbol of it is referenced: loading it registers the CUDA kernels.
if (what === 'libs') console.log([`-L${layout.lib}`, `-Wl,-rpath,${layout.lib}`, '-Wl,--no-as-needed', ...libs.map((l) => `-l${l}`)].join(' '));
// Debian's libtorch and pip's PyTorch 2.x use the new C++ ABI; older pip builds state theirs (TORCH_CXX11_ABI=0).
if (what === 'abi') console.log(process.env.TORCH_CXX11_ABI ?? '1');
// Which libtorch the addon is built against (so a setup step can tell when to rebuild it).
if (what === 'dir') console.log(layout.dir);
if (what === 'openmp') console.log(openmpLink());
