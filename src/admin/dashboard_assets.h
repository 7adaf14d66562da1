// The dashboard's files (src/admin/dashboard/), built into the binary by CMake
// (dashboard_assets.cc.in): the page, its script, and the login form shown without the token.
#pragma once

#include <string_view>

namespace gatehouse::admin {

extern const std::string_view kDashboardHtml;
extern const std::string_view kDashboardJs;
extern const std::string_view kLoginHtml;

}  // namespace gatehouse::admin
