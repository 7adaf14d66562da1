// The Redis clients of the plugins that share state through Redis (rate_limit's cluster scope,
// the cache's shared tier): one client per worker per Redis configuration, in the worker's filter
// state (so every plugin on a worker shares its connections, and the worker's drain stops them).
#pragma once

#include <functional>

#include "config/config.h"
#include "filters/slots.h"

namespace boost::asio {
class io_context;
}
namespace gatehouse::redis {
class Client;
}

namespace gatehouse::filters {

// Hands `ready` this thread's client for `cfg` once one of its connections is up: at once when
// it is, else when it comes up within cfg.timeout of the client's creation (a client is made on
// first use and connects in the background; the first requests wait for it rather than fall back
// at once). Null when no connection comes up in that time, or the URL cannot be used. `ready`
// runs on `io`'s thread, possibly inline.
void with_redis(WorkerState& state, boost::asio::io_context& io, const config::Redis& cfg,
                std::function<void(redis::Client*)> ready);

}  // namespace gatehouse::filters
