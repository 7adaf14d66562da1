// Request ids: a well-formed incoming id is kept (so a trace crosses the gateway unchanged),
// anything else is replaced by a fresh random one.
#pragma once

#include <string>
#include <string_view>

#include "upstream/balancer.h"

namespace gatehouse::observe {

// 1 to 128 characters of [A-Za-z0-9._:-]: safe to log, to echo and to put in JSON.
bool valid_request_id(std::string_view id);

// 32 lower-case hex digits (128 random bits).
void generate_request_id(upstream::Random& rng, std::string* out);

}  // namespace gatehouse::observe
