// JWT verification against public vectors (../shared/vectors). Written with src/jwt/jwt.cc.
#include "jwt/jwt.h"

#include <gtest/gtest.h>

namespace gatehouse::jwt {
namespace {

TEST(Jwt, NoneIsNeverAnAlgorithm) { EXPECT_FALSE(alg_from_name("none")); }

}  // namespace
}  // namespace gatehouse::jwt
