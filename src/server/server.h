// The process: loads the config, starts the workers, handles signals, reloads, drains on shutdown.
// Runs on the main thread; workers are reached only by posting to them.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"

namespace gatehouse::server {

struct RunOptions {
  bool watch = false;  // reload when the config file changes
};

// Serves until SIGTERM/SIGINT. Returns the process exit status: 0 after a clean drain, 1 on a
// start-up error (logged as one line), 2 when the drain budget ran out.
int run(const std::string& config_path, const RunOptions& options = {});

}  // namespace gatehouse::server
