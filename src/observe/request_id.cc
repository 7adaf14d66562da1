#include "observe/request_id.h"

namespace gatehouse::observe {

bool valid_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (unsigned char c : id) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

void generate_request_id(upstream::Random& rng, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->resize(32);
  for (int half = 0; half < 2; ++half) {
    uint64_t r = rng.next();
    for (int i = 0; i < 16; ++i) (*out)[half * 16 + i] = kHex[(r >> (i * 4)) & 15];
  }
}

}  // namespace gatehouse::observe
