#include "daemon/access_policy.h"

#include <gtest/gtest.h>

#include "config/crypto.h"

namespace troupe::daemon {
namespace {

using config::Permission;

config::Identity identity(std::string name, std::string token, std::string subject,
                          std::vector<config::Grant> grants) {
  config::Identity out{std::move(name), std::nullopt, std::move(subject), std::move(grants)};
  if (!token.empty()) out.token_sha256 = config::sha256(token);
  return out;
}

constexpr auto kSubmitRead =
    static_cast<config::Permissions>(static_cast<config::Permissions>(Permission::kSubmit) |
                                     static_cast<config::Permissions>(Permission::kRead));

TEST(Matches, StarMatchesAnyRunOfCharacters) {
  EXPECT_TRUE(matches("*", "anything"));
  EXPECT_TRUE(matches("*", ""));
  EXPECT_TRUE(matches("batch-*", "batch-"));
  EXPECT_TRUE(matches("batch-*", "batch-nightly"));
  EXPECT_TRUE(matches("*-eu", "mail-eu"));
  EXPECT_TRUE(matches("a*b*c", "a-b-b-c"));
  EXPECT_TRUE(matches("echo", "echo"));
  EXPECT_FALSE(matches("echo", "echo2"));
  EXPECT_FALSE(matches("batch-*", "batch"));
  EXPECT_FALSE(matches("*-eu", "mail-us"));
  EXPECT_FALSE(matches("a*b*c", "a-b-b-"));
}

TEST(Allows, AnyGrantWhosePatternMatchesAndHoldsThePermission) {
  const auto ci = identity(
      "ci", "t", "",
      {{"batch-*", kSubmitRead}, {"shared", static_cast<config::Permissions>(Permission::kRead)}});
  EXPECT_TRUE(allows(ci, Permission::kSubmit, "batch-a"));
  EXPECT_TRUE(allows(ci, Permission::kRead, "shared"));
  EXPECT_FALSE(allows(ci, Permission::kSubmit, "shared"));
  EXPECT_FALSE(allows(ci, Permission::kCancel, "batch-a"));
  EXPECT_FALSE(allows(ci, Permission::kAdmin, "batch-a"));
  const auto ops = identity("ops", "u", "", {{"*", config::kAllPermissions}});
  for (auto p : {Permission::kSubmit, Permission::kRead, Permission::kCancel, Permission::kAdmin}) {
    EXPECT_TRUE(allows(ops, p, "anything")) << permission_name(p);
  }
  EXPECT_FALSE(allows(identity("none", "v", "", {}), Permission::kRead, "x"));
}

class Identify : public ::testing::Test {
 protected:
  config::AuthOptions auth_{
      {identity("ci", "ci-token", "", {}), identity("ops", "ops-token", "O=Example,CN=ops", {})}};
};

TEST_F(Identify, ABearerTokenNamesItsIdentityWhateverTheSchemeCase) {
  EXPECT_EQ(identify(auth_, {"Bearer ci-token", ""}).identity, &auth_.identities[0]);
  EXPECT_EQ(identify(auth_, {"bearer ops-token", ""}).identity, &auth_.identities[1]);
}

TEST_F(Identify, ATokenWinsOverACertificate) {
  EXPECT_EQ(identify(auth_, {"Bearer ci-token", "O=Example,CN=ops"}).identity,
            &auth_.identities[0]);
  EXPECT_EQ(identify(auth_, {std::nullopt, "O=Example,CN=ops"}).identity, &auth_.identities[1]);
}

TEST_F(Identify, UnknownOrMalformedCredentialsSayWhatIsWrongNotWhatExists) {
  const auto wrong = identify(auth_, {"Bearer ci-token2", "O=Example,CN=ops"});
  EXPECT_EQ(wrong.identity, nullptr);
  EXPECT_EQ(wrong.error, "the bearer token matches no identity");
  EXPECT_EQ(identify(auth_, {"ci-token", ""}).error,
            "the authorization header must be \"Bearer <token>\"");
  EXPECT_EQ(identify(auth_, {"Bearer ", ""}).identity, nullptr);
  EXPECT_NE(identify(auth_, {std::nullopt, "CN=x"}).error.find("\"CN=x\" names no identity"),
            std::string::npos);
  EXPECT_NE(identify(auth_, {std::nullopt, ""}).error.find("no credentials"), std::string::npos);
}

}  // namespace
}  // namespace troupe::daemon
