// Reading a request's cookies (RFC 6265 5.4: cookie-pair *( ";" SP cookie-pair )), for the
// gateway's own uses: a balancer's hash key, a JWT carried in a cookie, the dashboard's session.
#pragma once

#include <string_view>

#include "http/message.h"

namespace gatehouse::http {

// The value of cookie `name` in the request's Cookie fields (HTTP/2 sends one field per cookie),
// the first one found; empty when there is none.
std::string_view cookie_value(const RequestHead& req, std::string_view name);

}  // namespace gatehouse::http
