// The route table: the config's routes in precedence order, matched against a parsed request.
// Immutable after construction (part of a Snapshot); matching allocates nothing on the common path
// and may run on any worker at once.
//
// Precedence (most specific first; ties keep file order):
//   1. host: exact > wildcard (longer suffix first) > any
//   2. path: exact > template (more literal segments first) > regex > prefix (longer first) > any
//      (as in NGINX, a matching regex beats a prefix; an exact path beats both)
//   3. more header and query conditions first
//   4. a method list before no method list
// The first route that matches in that order wins. A request that some route would take but for
// its method gets 405 with Allow listing the methods of all such routes.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"
#include "http/message.h"

namespace gatehouse::router {

using Captures = std::vector<std::pair<std::string_view, std::string_view>>;  // name, value

struct Match {
  const config::Route* route = nullptr;
  Captures captures;  // views into the route (names) and the request (values)
  std::string allow;  // set when no route matched only because of the method
  void reset() {
    route = nullptr;
    captures.clear();
    allow.clear();
  }
};

class RouteTable {
 public:
  explicit RouteTable(const std::vector<config::Route>& routes);

  void match(const http::RequestHead& req, Match* out) const;

  // The routes in precedence order (for /status and tests).
  const std::vector<const config::Route*>& ordered() const { return ordered_; }

 private:
  std::vector<const config::Route*> ordered_;
};

// True when the route's conditions other than the method hold; fills captures.
bool matches_ignoring_method(const config::Route& r, const http::RequestHead& req, Captures* caps);
bool method_allowed(const config::Route& r, std::string_view method);

// The path (and query) to send upstream after the route's rewrite rules, appended to *out.
void rewrite_target(const config::Route& r, const Captures& caps, std::string_view path,
                    std::string_view query, std::string* out);

// The value of a query parameter (raw, not percent-decoded); found=false when absent.
std::string_view query_param(std::string_view query, std::string_view name, bool* found);

}  // namespace gatehouse::router
