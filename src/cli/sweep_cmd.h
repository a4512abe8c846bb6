#pragma once
// `ihlab sweep` and its subcommands (merge, status, sbatch, and the internal worker), registered on
// the command line by main.cpp.
#include <CLI/CLI.hpp>

#include <memory>

namespace ihlab {

struct SweepCli;
// Adds the subcommand; returns the state that parse() fills and run_sweep_cli() reads.
std::shared_ptr<SweepCli> add_sweep_cli(CLI::App& app);
// Runs whichever sweep command was parsed; returns the exit status.
int run_sweep_cli(const SweepCli& cli, const std::string& command_line);
bool sweep_cli_parsed(const SweepCli& cli);

}  // namespace ihlab
