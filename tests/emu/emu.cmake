# The CUDA emulator (DEMIX_CUDA=EMULATE): kernels/cuda/*.cu compiled as C++
# for the CPU against tests/emu/include, with the emulated runtime and
# libraries, into dx_kernels. A test build only: it lets the GPU tier's
# programs run the CUDA backend's own code on hosts without a GPU.
# (functions run in the scopes that call them: paths from PROJECT_SOURCE_DIR)

# dx_emu_translate(OUT_VAR file.cu...): the rewritten .cpp files (see translate.cmake).
function(dx_emu_translate out_var)
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/emu)
  file(MAKE_DIRECTORY ${out_dir})
  set(translated)
  foreach(cu ${ARGN})
    get_filename_component(name ${cu} NAME_WE)
    add_custom_command(OUTPUT ${out_dir}/${name}.cpp
      COMMAND ${CMAKE_COMMAND} -DIN=${cu} -DOUT=${out_dir}/${name}.cpp -P ${PROJECT_SOURCE_DIR}/tests/emu/translate.cmake
      DEPENDS ${cu} ${PROJECT_SOURCE_DIR}/tests/emu/translate.cmake
      COMMENT "CUDA emulator: translating ${name}.cu")
    list(APPEND translated ${out_dir}/${name}.cpp)
  endforeach()
  set(${out_var} ${translated} PARENT_SCOPE)
endfunction()

function(dx_emu_cxx_options target)
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/tests/emu/include ${PROJECT_SOURCE_DIR}/kernels/cuda)
  # Kernels written for nvcc: its pragmas, and helpers only some files use.
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wno-unknown-pragmas -Wno-unused-function>)
  set_target_properties(${target} PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON)
endfunction()

# The CUDA backend of `target` (dx_kernels) from kernels/cuda on the emulator.
function(dx_emu_add_cuda target)
  file(GLOB cu_files CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/kernels/cuda/*.cu)
  dx_emu_translate(translated ${cu_files})
  target_sources(${target} PRIVATE ${translated} ${PROJECT_SOURCE_DIR}/tests/emu/emu_runtime.cpp ${PROJECT_SOURCE_DIR}/tests/emu/emu_libs.cpp)
  target_compile_definitions(${target} PUBLIC DEMIX_HAVE_CUDA=1 DEMIX_CUDA_EMULATED=1)
  dx_emu_cxx_options(${target})
endfunction()

# The emulator's own tests (test_emu.cu), label emu.
function(dx_emu_add_tests)
  dx_emu_translate(translated ${PROJECT_SOURCE_DIR}/tests/emu/test_emu.cu)
  add_executable(test_emu ${translated} ${PROJECT_SOURCE_DIR}/tests/unit/dx_test.c)
  set_target_properties(test_emu PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  target_include_directories(test_emu PRIVATE ${PROJECT_SOURCE_DIR}/tests/unit)
  target_link_libraries(test_emu PRIVATE dx_kernels)
  dx_emu_cxx_options(test_emu)
  add_test(NAME test_emu COMMAND test_emu)
  set_tests_properties(test_emu PROPERTIES LABELS emu)
endfunction()
