#include "filters/cache/flat_index.h"

#include <random>

namespace gatehouse::filters::cache {

uint64_t key_hash_seed() {
  std::random_device rd;
  return uint64_t{rd()} << 32 | rd();
}

}  // namespace gatehouse::filters::cache
