// Placeholder while the implementation is written (see jwt.h): everything refuses.
#include "jwt/jwt.h"

namespace gatehouse::jwt {

struct Key::Impl {};
Key::Key(std::unique_ptr<Impl> impl, std::string kid) : impl_(std::move(impl)), kid_(std::move(kid)) {}
Key::~Key() = default;
std::optional<Alg> alg_from_name(std::string_view) { return std::nullopt; }
std::string_view alg_name(Alg) { return "?"; }
std::shared_ptr<const Key> Key::hmac(std::string, std::string, std::optional<Alg>, std::string* e) {
  *e = "not implemented";
  return nullptr;
}
std::shared_ptr<const Key> Key::from_pem(std::string_view, std::string, std::string* e) {
  *e = "not implemented";
  return nullptr;
}
std::shared_ptr<const Key> Key::from_jwk(const boost::json::object&, std::string* e) {
  *e = "not implemented";
  return nullptr;
}
bool Key::accepts(Alg) const { return false; }
bool Key::verify(Alg, std::string_view, std::string_view) const { return false; }
std::optional<KeySet> parse_jwks(std::string_view, std::string* e, std::vector<std::string>*) {
  *e = "not implemented";
  return std::nullopt;
}
std::string_view failure_name(Failure) { return "?"; }
std::optional<Failure> verify(std::string_view, const KeySet&, const Rules&, int64_t, Verified*) {
  return Failure::kMalformed;
}
std::string claim_text(const boost::json::object&, std::string_view) { return {}; }
std::optional<std::string> base64url_decode(std::string_view) { return std::nullopt; }

}  // namespace gatehouse::jwt
