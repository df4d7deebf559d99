# Rewrite a .cu file for the CUDA emulator: every launch
#   kernel<<<grid, block, smem, stream>>>(args)
# becomes DX_EMU_LAUNCH(kernel, grid, block, smem, stream)(args), which
# tests/emu/include/cuda_runtime.h turns into a call of the emulated grid.
# Everything else is left as written (a #line keeps diagnostics on the .cu).
# Usage: cmake -DIN=file.cu -DOUT=file.cpp -P translate.cmake
file(READ "${IN}" src)
string(REGEX MATCHALL "<<<" opens "${src}")
string(REGEX REPLACE "([A-Za-z_][A-Za-z0-9_]*)[ \t]*<<<" "DX_EMU_LAUNCH(\\1, " src "${src}")
string(REGEX MATCHALL ">>>[ \t]*\\(" closes "${src}")
list(LENGTH opens n_open)
list(LENGTH closes n_close)
if(NOT n_open EQUAL n_close)
  message(FATAL_ERROR "${IN}: ${n_open} launches but ${n_close} argument lists: a launch the emulator cannot rewrite")
endif()
string(REGEX REPLACE ">>>[ \t]*\\(" ")(" src "${src}")
file(WRITE "${OUT}.tmp" "#line 1 \"${IN}\"\n${src}")
file(RENAME "${OUT}.tmp" "${OUT}")
