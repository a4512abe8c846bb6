# Script tests, included from the top-level CMakeLists.txt (so paths are relative to the root).
#
# Each PyTorch cross-check builds a C++ dumper that writes a model's parameters, loss, predictions
# and every gradient in float64, and a script that recomputes them with an independent PyTorch
# implementation written from the model's definition (docs/models/). Labelled "slow" so the
# sanitizer run (fast tests only) leaves them out; exit 77 = skipped when Debian's /usr/bin/python3
# or its torch is missing.
function(ihlab_torch_check name dumper)
  add_executable(${dumper} ${CMAKE_SOURCE_DIR}/tests/${dumper}.cpp)
  target_link_libraries(${dumper} PRIVATE ihlab_lib)
  add_test(NAME ${name}
    COMMAND sh -c "[ -x /usr/bin/python3 ] || { echo 'SKIP: no /usr/bin/python3'; exit 77; }; exec /usr/bin/python3 \"$@\"" sh
            ${CMAKE_SOURCE_DIR}/tests/${name}.py
            --dumper $<TARGET_FILE:${dumper}> --dir ${CMAKE_BINARY_DIR}/${name})
  set_tests_properties(${name} PROPERTIES LABELS "slow" SKIP_RETURN_CODE 77 TIMEOUT 300)
endfunction()

ihlab_torch_check(torch_check_attn1 dump_attn1)          # smoke model: loss, attention, gradients
ihlab_torch_check(torch_check_gih tool_dump_gih)         # gih (Chen et al. 2024), 12 configurations
ihlab_torch_check(torch_check_gih_full tool_dump_gih_full)  # gih-full appendix variant, 17 configurations

# The HTML report opened in headless Chromium (tests/report_check.py); the screenshot lands in
# build/test-artifacts/. Exit 77 = skipped when chromium is missing.
add_test(NAME report_browser_check
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/report_check.py --ihlab $<TARGET_FILE:ihlab>
          --dir ${CMAKE_BINARY_DIR}/report_check --artifacts ${CMAKE_BINARY_DIR}/test-artifacts)
set_tests_properties(report_browser_check PROPERTIES LABELS "slow" SKIP_RETURN_CODE 77 TIMEOUT 300)
ihlab_torch_check(torch_check_transformer tool_dump_transformer)  # transformer: 12 configurations, every option
ihlab_torch_check(torch_check_circuit tool_dump_circuit)  # attention-circuit: task loss, copy objective, error split, gradients
ihlab_torch_check(torch_check_disentangled tool_dump_disentangled)  # disentangled model + pseudo kernel (Musat et al. 2025)

# Every pointer into docs/ in the code (a page, or a page and section) and every relative link in
# the Markdown resolves to an existing page and heading (scripts/check_doc_links.py). Exit 77 =
# skipped without /usr/bin/python3.
add_test(NAME doc_links
  COMMAND sh -c "[ -x /usr/bin/python3 ] || { echo 'SKIP: no /usr/bin/python3'; exit 77; }; exec /usr/bin/python3 \"$@\"" sh
          ${CMAKE_SOURCE_DIR}/scripts/check_doc_links.py ${CMAKE_SOURCE_DIR})
set_tests_properties(doc_links PROPERTIES LABELS "fast" SKIP_RETURN_CODE 77 TIMEOUT 60)

# Sweeps as processes (tests/sweep_check.py): examples/sweep-smoke.toml serially, with --workers 2,
# killed with SIGKILL at several moments (the process group, one worker, inside a store write) and
# rerun, as three Slurm shards through the `ihlab sweep sbatch` script and merged, and under
# `mpirun --oversubscribe -np 3`; each must equal the serial sweep bit for bit. About a minute.
add_test(NAME sweep_processes
  COMMAND sh -c "[ -x /usr/bin/python3 ] || { echo 'SKIP: no /usr/bin/python3'; exit 77; }; exec /usr/bin/python3 \"$@\"" sh
          ${CMAKE_SOURCE_DIR}/tests/sweep_check.py --ihlab $<TARGET_FILE:ihlab> --examples ${CMAKE_SOURCE_DIR}/examples
          --dir ${CMAKE_BINARY_DIR}/sweep_check)
set_tests_properties(sweep_processes PROPERTIES LABELS "slow" SKIP_RETURN_CODE 77 TIMEOUT 600)

# Data-parallel training (tests/data_parallel_check.py): one process, `mpirun --oversubscribe -np 2`
# and `-np 4` over 4 shards, and a run checkpointed under MPI resumed in one process, all equal bit
# for bit; bad shard counts exit with an error naming data.shards. About 40 s.
add_test(NAME data_parallel
  COMMAND sh -c "[ -x /usr/bin/python3 ] || { echo 'SKIP: no /usr/bin/python3'; exit 77; }; exec /usr/bin/python3 \"$@\"" sh
          ${CMAKE_SOURCE_DIR}/tests/data_parallel_check.py --ihlab $<TARGET_FILE:ihlab> --dir ${CMAKE_BINARY_DIR}/data_parallel_check)
set_tests_properties(data_parallel PROPERTIES LABELS "slow" SKIP_RETURN_CODE 77 TIMEOUT 300)

# A reproduction's main run beside its variants (tests/reproduce_workers_check.py):
# chen2024-three-stage --quick with --workers 1 (one after the other) and --workers 2 (the main run
# on one thread beside the variant's worker) give the same metrics.csv bit for bit. About 10 s.
add_test(NAME reproduce_workers
  COMMAND sh -c "[ -x /usr/bin/python3 ] || { echo 'SKIP: no /usr/bin/python3'; exit 77; }; exec /usr/bin/python3 \"$@\"" sh
          ${CMAKE_SOURCE_DIR}/tests/reproduce_workers_check.py --ihlab $<TARGET_FILE:ihlab> --dir ${CMAKE_BINARY_DIR}/reproduce_workers_check)
set_tests_properties(reproduce_workers PROPERTIES LABELS "slow" SKIP_RETURN_CODE 77 TIMEOUT 300)
