// The handler registry (handlers/registry.h): every kind in handlers/
// registers itself, the config reader finds kinds only through it, and a kind
// registered from elsewhere (here: this test, standing in for a new folder)
// is read without any change to config/.

#include "handlers/registry.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/config.h"
#include "core/handler.h"

namespace troupe::test_kind {

/// A kind that exists only in this test binary.
struct ProbeOptions {
  static constexpr std::string_view kKind = "probe";
  std::string word;
  bool operator==(const ProbeOptions&) const = default;
};

std::unique_ptr<core::Handler> build_handler(const ProbeOptions&, boost::asio::any_io_executor,
                                             core::Clock&) {
  return nullptr;
}
std::string describe_handler(const ProbeOptions&) {
  return "probe";
}
std::string summarize_handler(const ProbeOptions& options) {
  return "probe " + options.word;
}

core::HandlerOptions read_probe(config::detail::MapReader& m) {
  ProbeOptions options;
  if (!m.string("word", options.word)) {
    m.diag().error(m.self().where(), m.path("word"), "missing; a probe needs a word");
  }
  return options;
}

[[maybe_unused]] const bool registered =
    handlers::handler_registry().add({ProbeOptions::kKind, {"word"}, read_probe});

}  // namespace troupe::test_kind

namespace troupe::handlers {
namespace {

std::string all_errors(const config::LoadResult& result) {
  std::string out;
  for (const auto& error : result.errors) out += error.to_string() + "\n";
  return out;
}

TEST(HandlerRegistry, ListsEveryKindInHandlers) {
  // Nothing in this binary names builtin, exec or http: they are here only
  // because each folder registered itself and the archive was linked whole.
  const std::vector<std::string_view> expected = {"builtin", "exec", "http", "probe"};
  EXPECT_EQ(handler_registry().names(), expected);
  for (const std::string_view name : expected) {
    const HandlerKind* kind = handler_registry().find(name);
    ASSERT_NE(kind, nullptr) << name;
    EXPECT_EQ(kind->name, name);
  }
  EXPECT_EQ(handler_registry().find("ftp"), nullptr);
}

TEST(HandlerRegistry, RefusesAKindRegisteredTwice) {
  EXPECT_THROW(handler_registry().add({"http", {}, test_kind::read_probe}), std::logic_error);
  EXPECT_THROW(handler_registry().add({"", {}, test_kind::read_probe}), std::logic_error);
}

TEST(HandlerRegistry, ConfigReadsAKindRegisteredOutsideConfig) {
  const auto result = config::load_string(R"(troupes:
  - name: t
    handler: {kind: probe, word: hello}
)");
  ASSERT_TRUE(result.config) << all_errors(result);
  const auto& handler = result.config->troupes.at(0).handler;
  const auto* probe = handler.get_if<test_kind::ProbeOptions>();
  ASSERT_NE(probe, nullptr);
  EXPECT_EQ(probe->word, "hello");
  EXPECT_EQ(core::summarize(handler), "probe hello");
}

TEST(HandlerRegistry, UnknownKindNamesEveryRegisteredKind) {
  const auto result = config::load_string(R"(troupes:
  - name: t
    handler: {kind: prob}
)");
  ASSERT_EQ(result.errors.size(), 1u) << all_errors(result);
  EXPECT_EQ(result.errors[0].path, "troupes[0].handler.kind");
  EXPECT_EQ(result.errors[0].message,
            "unknown handler kind \"prob\"; expected one of the registered kinds: builtin, exec, "
            "http or probe (did you mean \"probe\"?)");
}

TEST(HandlerRegistry, KeysOfARegisteredKindAreExplainedUnderAnother) {
  const auto result = config::load_string(R"(troupes:
  - name: t
    handler: {kind: http, url: "http://127.0.0.1:1/", word: hello}
)");
  ASSERT_EQ(result.errors.size(), 1u) << all_errors(result);
  EXPECT_EQ(result.errors[0].message, "'word' belongs to handler kind 'probe', not 'http'");
}

TEST(HandlerRegistry, AKindsOwnErrorsAreReported) {
  const auto result = config::load_string(R"(troupes:
  - name: t
    handler: {kind: probe}
)");
  ASSERT_EQ(result.errors.size(), 1u) << all_errors(result);
  EXPECT_EQ(result.errors[0].path, "troupes[0].handler.word");
  EXPECT_FALSE(result.config);
}

}  // namespace
}  // namespace troupe::handlers
