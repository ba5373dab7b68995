# Which of ggml's CPU kernels the vendored llama.cpp is compiled with: included by fireside's
# CMakeLists.txt and, as CMAKE_PROJECT_INCLUDE, by benchmarks/build_reference.py, so that the
# extension and the reference tools always run the same kernels.
#
# No AMX kernels. On CPUs with AMX-INT8 (Intel Xeon since Sapphire Rapids) ggml's AMX matrix
# multiplication crashes on the first batch of more than one token, at this pin, in
# llama.cpp's own tools too (upstream issues 20824 and 16315: wrong results for Q4_0/Q4_1,
# segfaults). Those CPUs run the AVX-512 kernels instead. `-U` takes effect wherever
# `-march=native` (or a portable variant's `-mamx-int8`) stands on the command line, and ggml
# compiles its AMX code only where the compiler defines __AMX_INT8__.
include_guard(GLOBAL)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64|i[3-6]86)$"
   AND CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
  string(APPEND CMAKE_C_FLAGS " -U__AMX_INT8__")
  string(APPEND CMAKE_CXX_FLAGS " -U__AMX_INT8__")
endif()
