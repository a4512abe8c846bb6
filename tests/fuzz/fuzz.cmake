# libFuzzer targets, one per parser of outside input (tests/fuzz/fuzz_*.cpp); scripts/fuzz.sh
# configures, builds and runs them. Included from the top-level CMakeLists.txt before the libraries
# are declared, so that with IHLAB_FUZZ=ON every object of the tree carries the sanitizers and
# libFuzzer's coverage hooks; with it OFF (the default) this file does nothing. Configure a
# separate tree with clang:
#   CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DIHLAB_FUZZ=ON
#   cmake --build build-fuzz --target fuzz       # the parsers of files and config text
#   cmake --build build-fuzz --target fuzz_all   # also the two that need the whole library
if(NOT IHLAB_FUZZ)
  return()
endif()
if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "IHLAB_FUZZ needs clang for libFuzzer: configure a fresh tree with CXX=clang++ "
                      "(this one uses ${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER})")
endif()
add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
                    -fno-omit-frame-pointer)
add_link_options(-fsanitize=address,undefined)

# What the targets link. The file and config-text parsers need only io/ and two core sources,
# compiled here so that the bounded run in scripts/test.sh builds in about a minute (with clang the
# whole library takes ten times as long); this becomes the io layer library once the library is
# split per layer. fuzz_config (the real run schema, built from the task and model registries) and
# fuzz_resume (the trainer) need everything.
file(GLOB IHLAB_FUZZ_IO_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/io/*.cpp)
add_library(ihlab_fuzz_io STATIC ${IHLAB_FUZZ_IO_SOURCES} ${CMAKE_SOURCE_DIR}/src/core/tensor.cpp
                                 ${CMAKE_SOURCE_DIR}/src/core/autograd.cpp)
target_include_directories(ihlab_fuzz_io PUBLIC ${CMAKE_SOURCE_DIR}/src)
target_link_libraries(ihlab_fuzz_io PUBLIC fmt::fmt nlohmann_json::nlohmann_json)
if(TARGET tomlplusplus::tomlplusplus)
  target_link_libraries(ihlab_fuzz_io PUBLIC tomlplusplus::tomlplusplus)
endif()
set(IHLAB_FUZZ_IO_LIB ihlab_fuzz_io)
set(IHLAB_FUZZ_FULL_LIB ihlab_lib)

function(ihlab_fuzz_target name source lib)
  add_executable(${name} EXCLUDE_FROM_ALL ${CMAKE_SOURCE_DIR}/tests/fuzz/${source})
  target_link_libraries(${name} PRIVATE ${lib})
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
endfunction()

set(IHLAB_FUZZ_IO_TARGETS fuzz_toml fuzz_safetensors fuzz_checkpoint fuzz_metrics fuzz_attention_log fuzz_latest)
ihlab_fuzz_target(fuzz_toml fuzz_config.cpp ${IHLAB_FUZZ_IO_LIB})
target_compile_definitions(fuzz_toml PRIVATE IHLAB_FUZZ_LOCAL_SCHEMA)
foreach(name safetensors checkpoint metrics attention_log latest)
  ihlab_fuzz_target(fuzz_${name} fuzz_${name}.cpp ${IHLAB_FUZZ_IO_LIB})
endforeach()
ihlab_fuzz_target(fuzz_config fuzz_config.cpp ${IHLAB_FUZZ_FULL_LIB})
ihlab_fuzz_target(fuzz_resume fuzz_resume.cpp ${IHLAB_FUZZ_FULL_LIB})

# Writes the seed corpora of the io targets (a small checkpoint, metrics.csv, attention.jsonl,
# latest.json as the trainer writes them); an ordinary program.
add_executable(fuzz_seeds EXCLUDE_FROM_ALL ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_seeds.cpp)
target_link_libraries(fuzz_seeds PRIVATE ${IHLAB_FUZZ_IO_LIB})

add_custom_target(fuzz DEPENDS ${IHLAB_FUZZ_IO_TARGETS} fuzz_seeds)
add_custom_target(fuzz_all DEPENDS fuzz fuzz_config fuzz_resume)
