#include "http/cookie.h"

namespace gatehouse::http {

std::string_view cookie_value(const RequestHead& req, std::string_view name) {
  for (const auto& h : req.headers) {
    if (h.id != HeaderId::kCookie) continue;
    for (std::string_view rest = h.value; !rest.empty();) {
      const auto semi = rest.find(';');
      auto pair = rest.substr(0, semi);
      while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
      const auto eq = pair.find('=');
      if (eq != std::string_view::npos && pair.substr(0, eq) == name) return pair.substr(eq + 1);
      if (semi == std::string_view::npos) break;
      rest.remove_prefix(semi + 1);
    }
  }
  return {};
}

}  // namespace gatehouse::http
