{
  "targets": [
    {
      "target_name": "attune_torch",
      "sources": ["src/addon.cc", "src/handle.cc", "src/creation.cc", "src/math.cc", "src/shape.cc", "src/runtime.cc", "src/fused.cc", "src/cpu-kernels.cc", "src/optimizer.cc", "src/profiler.cc", "src/packed-matmul.cc", "src/huge-pages.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "<!@(node torch-config.cjs include)"],
      "libraries": ["<!@(node torch-config.cjs libs)"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "_GLIBCXX_USE_CXX11_ABI=<!(node torch-config.cjs abi)"],
      "ldflags": ["<!@(node torch-config.cjs openmp)"],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O3", "-fopenmp", "-fexceptions", "-Wno-unused-parameter", "-Wno-deprecated-declarations"]
    }
  ]
}
