// Tells binding.gyp where libtorch is: Debian's system libtorch by default, or the one under $LIBTORCH
// (for example the `torch` folder of a pip CUDA build: <site-packages>/torch).
const fs = require('node:fs');
const path = require('node:path');

const root = process.env.LIBTORCH;
const what = process.argv[2];

function systemLayout() {
  const multiarch = fs.existsSync('/usr/lib/x86_64-linux-gnu/libtorch.so') ? '/usr/lib/x86_64-linux-gnu' : '/usr/lib/aarch64-linux-gnu';
  return { include: ['/usr/include', '/usr/include/torch/csrc/api/include'], lib: multiarch };
}

function customLayout(dir) {
  return { include: [path.join(dir, 'include'), path.join(dir, 'include/torch/csrc/api/include')], lib: path.join(dir, 'lib') };
}

const layout = root ? customLayout(path.resolve(root)) : systemLayout();
if (!fs.existsSync(path.join(layout.lib, 'libtorch.so'))) {
  console.error(`libtorch not found in ${layout.lib}: install Debian's libtorch-dev or set LIBTORCH=<dir with include/ and lib/>`);
  process.exit(1);
}

const libs = ['torch', 'torch_cpu', 'c10'];
for (const optional of ['torch_cuda', 'c10_cuda']) {
  if (fs.existsSync(path.join(layout.lib, `lib${optional}.so`))) libs.push(optional);
}

if (what === 'include') console.log(layout.include.join(' '));
// --no-as-needed keeps libtorch_cuda linked although no symbol of it is referenced: loading it registers the CUDA kernels.
if (what === 'libs') console.log([`-L${layout.lib}`, `-Wl,-rpath,${layout.lib}`, '-Wl,--no-as-needed', ...libs.map((l) => `-l${l}`)].join(' '));
// A pip torch states its C++ ABI; Debian's libtorch uses the default new ABI.
if (what === 'abi') console.log(process.env.TORCH_CXX11_ABI ?? '1');
