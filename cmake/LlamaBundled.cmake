# Link against a llama.cpp install prefix made by scripts/build_wheel.py and ship its shared
# libraries inside the wheel, so the wheel needs neither llama-cpp-python nor a compiler.
#
# The prefix holds (from `cmake --install` of llama.cpp built with GGML_BACKEND_DL=ON):
#   include/, lib/cmake/{llama,ggml}/, lib/lib{llama,ggml,ggml-base}.so*   (linked)
#   bin/libggml-<backend>.so                   (loaded at run time: CPU variants, GPU backends)
# Everything lands in <site-packages>/llamahost/lib/, which _native finds through its RPATH
# and from which it loads the backends when it starts (src/bindings/backends.cpp).
#
# Sets: the imported target `llama`.

if(NOT EXISTS "${LLAMAHOST_LLAMA_PREFIX}/lib/cmake/llama")
  message(FATAL_ERROR "LLAMAHOST_LLAMA_PREFIX=${LLAMAHOST_LLAMA_PREFIX} holds no llama.cpp "
                      "install (lib/cmake/llama is missing); scripts/build_wheel.py makes one.")
endif()
# llama's package finds ggml's: take the prefix's, never another install on the search path
# (a llama-cpp-python in the build environment's site-packages has one too).
set(ggml_DIR "${LLAMAHOST_LLAMA_PREFIX}/lib/cmake/ggml" CACHE PATH "" FORCE)
find_package(llama CONFIG REQUIRED PATHS "${LLAMAHOST_LLAMA_PREFIX}/lib/cmake/llama"
             NO_DEFAULT_PATH)
message(STATUS "llama.cpp ${LLAMA_VERSION} (commit ${LLAMA_BUILD_COMMIT}), bundled from "
               "${LLAMAHOST_LLAMA_PREFIX}")

# The linked libraries under their SONAME (libllama.so.0, ...), the name _native asks for:
# a wheel holds no symbolic links, so each is one real file.
file(GLOB _llamahost_sonames "${LLAMAHOST_LLAMA_PREFIX}/lib/lib*.so.*")
list(FILTER _llamahost_sonames INCLUDE REGEX "\\.so\\.[0-9]+$")
file(GLOB _llamahost_backends "${LLAMAHOST_LLAMA_PREFIX}/bin/libggml-*.so")
if(NOT _llamahost_backends)
  message(FATAL_ERROR "no backend libraries in ${LLAMAHOST_LLAMA_PREFIX}/bin: llama.cpp must "
                      "be built with GGML_BACKEND_DL=ON")
endif()
set(_llamahost_backend_names "")
foreach(_library IN LISTS _llamahost_backends)
  get_filename_component(_name "${_library}" NAME_WE)
  string(REPLACE "libggml-" "" _name "${_name}")
  list(APPEND _llamahost_backend_names "${_name}")
endforeach()
set(GGML_AVAILABLE_BACKENDS "${_llamahost_backend_names}")
message(STATUS "bundled backend libraries: ${GGML_AVAILABLE_BACKENDS}")

foreach(_soname IN LISTS _llamahost_sonames)
  get_filename_component(_real "${_soname}" REALPATH)
  get_filename_component(_name "${_soname}" NAME)
  install(FILES "${_real}" DESTINATION llamahost/lib RENAME "${_name}")
endforeach()
install(FILES ${_llamahost_backends} DESTINATION llamahost/lib)
# What `llamahost --version` prints, without importing the extension.
file(WRITE "${CMAKE_CURRENT_BINARY_DIR}/llama_build.json"
  "{\"llama_cpp_commit\": \"${LLAMA_BUILD_COMMIT}\", \"llama_cpp_version\": \"${LLAMA_VERSION}\", "
  "\"backend_libraries\": \"${GGML_AVAILABLE_BACKENDS}\"}\n")
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/llama_build.json" DESTINATION llamahost/lib)
set(LLAMAHOST_NATIVE_RPATH "$ORIGIN/lib")
