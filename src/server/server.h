// The process: loads the config, starts the workers, handles signals, drains on shutdown.
#pragma once

#include <string>

namespace gatehouse::server {

// Serves until SIGTERM/SIGINT. Returns the process exit status: 0 after a clean drain, 1 on a
// start-up error (logged as one line), 2 when the drain budget ran out.
int run(const std::string& config_path);

}  // namespace gatehouse::server
