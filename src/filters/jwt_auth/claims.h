// The claims of the token jwt_auth admitted, kept in the request's slot for later filters (a rate
// limit keyed by a claim).
#pragma once

#include <memory>

#include "filters/slots.h"

namespace boost::json {
class object;
}

namespace gatehouse::filters {

inline const SlotKey<std::shared_ptr<const boost::json::object>> kJwtClaims{"jwt_auth.claims"};

}  // namespace gatehouse::filters
