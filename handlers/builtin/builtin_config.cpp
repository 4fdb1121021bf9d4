// The builtin kind's entry in the handler registry: its keys and its reader
// from YAML (handlers/registry.h).

#include <string>

#include "config/yaml_reader.h"
#include "handlers/builtin/builtin_options.h"
#include "handlers/registry.h"

namespace troupe::handlers {
namespace {

using config::detail::kNonNegative;
using config::detail::MapReader;

core::HandlerOptions read_builtin(MapReader& m) {
  using Kind = core::BuiltinHandlerOptions::Kind;
  using FailMode = core::BuiltinHandlerOptions::FailMode;
  core::BuiltinHandlerOptions b;
  const bool named = m.choice<Kind>("name", b.kind,
                                    {{"noop", Kind::kNoop},
                                     {"echo", Kind::kEcho},
                                     {"sleep", Kind::kSleep},
                                     {"fail", Kind::kFail}});
  if (!m.has("name")) {
    m.diag().error(m.self().where(), m.path("name"),
                   "missing; a builtin handler needs a name: noop, echo, sleep or fail");
  }
  m.duration("sleep", b.sleep, kNonNegative);
  m.choice<FailMode>("fail_mode", b.fail_mode,
                     {{"throw", FailMode::kThrow},
                      {"retryable", FailMode::kRetryable},
                      {"permanent", FailMode::kPermanent}});
  m.u32("fail_every", b.fail_every, {1, 1'000'000});
  if (named) {
    const std::string name = m.find("name")->node().Scalar();
    auto only_for = [&](std::string_view key, Kind owner, std::string_view owner_name) {
      if (m.has(key) && b.kind != owner) {
        m.diag().error(m.at(key), m.path(key),
                       "'" + std::string(key) + "' applies only to name: " +
                           std::string(owner_name) + ", not name: " + name);
      }
    };
    only_for("sleep", Kind::kSleep, "sleep");
    only_for("fail_mode", Kind::kFail, "fail");
    only_for("fail_every", Kind::kFail, "fail");
  }
  return b;
}

[[maybe_unused]] const bool builtin_kind_registered =
    handler_registry().add({core::BuiltinHandlerOptions::kKind,
                            {"name", "sleep", "fail_mode", "fail_every"},
                            read_builtin});

}  // namespace
}  // namespace troupe::handlers
