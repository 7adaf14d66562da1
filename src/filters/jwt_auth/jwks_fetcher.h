// Fetches the JWKS of every jwks_url that a loaded config uses, on the main thread's io_context:
// at start, every `refresh`, and when a token names an unknown key id (at most once per
// KeyStore::kMinRefetch). A failed fetch keeps the keys already held and retries with backoff
// (1 s doubling to 30 s), so an identity provider's outage never removes working keys.
// HTTPS verifies the server against the system's CA store (SSL_CERT_FILE / SSL_CERT_DIR honoured)
// and its host name, with SNI.
#pragma once

#include <memory>

#include "filters/registry.h"

namespace gatehouse::filters {

// stop() cancels the schedule and any fetch in flight.
std::unique_ptr<Background> start_jwks_fetcher(boost::asio::io_context& io);

}  // namespace gatehouse::filters
