#include "observe/log.h"

#include <spdlog/sinks/stdout_sinks.h>

namespace gatehouse::observe {

void init_logging() {
  auto logger = spdlog::stderr_logger_mt("gatehouse");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %v", spdlog::pattern_time_type::utc);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

}  // namespace gatehouse::observe
