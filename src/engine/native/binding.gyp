{
  # Separate targets on purpose: the kernels are compiled with -mavx2 -mfma (one microkernel also
  # with -mavx512f), the glue and the thread pool are not, so that the addon still loads (and says
  # why it cannot run) on a CPU without AVX2/FMA instead of dying of an illegal instruction.
  "targets": [
    {
      # The one AVX-512 microkernel, apart so that nothing else is compiled for AVX-512: the glue
      # calls it only where the CPU has AVX-512F.
      "target_name": "maskloop_kernels_avx512",
      "type": "static_library",
      "sources": ["ukernel512.cc"],
      "cflags": ["-fPIC", "-O3", "-mavx512f", "-mavx2", "-mfma", "-fno-math-errno", "-fno-trapping-math"],
      "cflags_cc": ["-std=c++17"],
      "cflags!": ["-O2", "-Os", "-Og", "-fno-omit-frame-pointer"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
      "conditions": [
        ["OS!='linux'", {
          "xcode_settings": {
            "OTHER_CFLAGS": ["-O3", "-mavx512f", "-mavx2", "-mfma", "-std=c++17"]
          }
        }]
      ]
    },
    {
      "target_name": "maskloop_kernels",
      "type": "static_library",
      "dependencies": ["maskloop_kernels_avx512"],
      "sources": ["conv.cc", "winograd.cc", "gemm.cc", "pool.cc", "eltwise.cc", "batchnorm.cc"],
      "cflags": ["-fPIC", "-O3", "-mavx2", "-mfma", "-fno-math-errno", "-fno-trapping-math"],
      "cflags_cc": ["-std=c++17"],
      "cflags!": ["-O2", "-Os", "-Og", "-fno-omit-frame-pointer"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
      "conditions": [
        ["OS!='linux'", {
          "xcode_settings": {
            "OTHER_CFLAGS": ["-O3", "-mavx2", "-mfma", "-std=c++17"]
          }
        }]
      ]
    },
    {
      "target_name": "maskloop_native",
      "sources": ["addon.cc", "threadpool.cc"],
      "dependencies": ["maskloop_kernels", "maskloop_kernels_avx512"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags": ["-fPIC", "-O2", "-pthread"],
      "cflags_cc": ["-std=c++17", "-fexceptions"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
      "ldflags": ["-pthread"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17"
      }
    }
  ]
}
