# Locate the llama.cpp C library installed by the pinned llama-cpp-python distribution.
#
# llama-cpp-python builds llama.cpp on install and leaves, in its site-packages prefix:
#   include/llama.h, llama-cpp.h, ggml*.h, gguf.h
#   lib/cmake/{llama,ggml}/*-config.cmake  and lib/lib{llama,ggml*}.so
#   llama_cpp/lib/lib{llama,ggml*}.so      (the copy the runtime environment loads)
# We ask the Python that runs the build where that prefix is, then find_package(llama CONFIG).
#
# Sets: LLAMA_PYTHON_PREFIX (site-packages dir), and the imported target `llama`.

if(NOT LLAMA_PYTHON_PREFIX)
  execute_process(
    COMMAND "${Python_EXECUTABLE}" -c
      "import importlib.util, pathlib; s = importlib.util.find_spec('llama_cpp'); print(pathlib.Path(s.origin).parent.parent if s else '')"
    OUTPUT_VARIABLE LLAMA_PYTHON_PREFIX
    OUTPUT_STRIP_TRAILING_WHITESPACE
    COMMAND_ERROR_IS_FATAL ANY)
endif()

if(NOT LLAMA_PYTHON_PREFIX OR NOT EXISTS "${LLAMA_PYTHON_PREFIX}/lib/cmake/llama")
  message(FATAL_ERROR
    "llama.cpp was not found: install the pinned 'llama-cpp-python==0.3.36' into the Python "
    "that builds llamahost (${Python_EXECUTABLE}); its install provides llama.cpp's headers, "
    "libraries and CMake package. Backends: CMAKE_ARGS=\"-DGGML_CUDA=on\" (or GGML_METAL, "
    "GGML_HIP, GGML_VULKAN) when installing llama-cpp-python.")
endif()

find_package(llama CONFIG REQUIRED PATHS "${LLAMA_PYTHON_PREFIX}/lib/cmake/llama" NO_DEFAULT_PATH)
message(STATUS "llama.cpp ${LLAMA_VERSION} (commit ${LLAMA_BUILD_COMMIT}) from ${LLAMA_PYTHON_PREFIX}")
message(STATUS "ggml backends: ${GGML_AVAILABLE_BACKENDS}")
