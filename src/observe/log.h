// Operational log: one clear line per event on stderr (spdlog). Access logs are separate
// (observe/access_log.h).
#pragma once

#include <spdlog/spdlog.h>

namespace gatehouse::observe {
void init_logging();
}  // namespace gatehouse::observe
