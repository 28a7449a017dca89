# Warnings as an INTERFACE target: link herdsim_warnings privately into every project target.
# (-Wnull-dereference is left out: GCC 12 reports false positives inside libstdc++ at -O2.)
add_library(herdsim_warnings INTERFACE)
target_compile_options(herdsim_warnings INTERFACE
  $<$<CXX_COMPILER_ID:GNU,Clang>:-Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion
    -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Woverloaded-virtual
    -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough>)
if(HERDSIM_WERROR)
  target_compile_options(herdsim_warnings INTERFACE $<$<CXX_COMPILER_ID:GNU,Clang>:-Werror>)
endif()
