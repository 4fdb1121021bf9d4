#include <gtest/gtest.h>

#include <string>

#include "tools/troupectl/options.h"

namespace troupe::troupectl {
namespace {

using namespace std::chrono_literals;

Options ok(std::vector<std::string> args, const char* env = nullptr) {
  auto r = parse_options(args, env);
  if (auto* e = std::get_if<UsageError>(&r)) {
    ADD_FAILURE() << "unexpected usage error: " << e->message;
    return {};
  }
  return std::get<Options>(r);
}

std::string bad(std::vector<std::string> args) {
  auto r = parse_options(args, nullptr);
  if (auto* e = std::get_if<UsageError>(&r)) return e->message;
  ADD_FAILURE() << "expected a usage error";
  return {};
}

TEST(TroupectlOptions, SubmitWithEveryOption) {
  const auto o = ok({"--address", "h:1", "submit", "echo", "--payload", "hi", "--key", "k",
                     "--idempotency-key=ik", "--timeout", "2s", "--wait", "--output", "json",
                     "--deadline=500ms"});
  EXPECT_EQ(o.command, Command::kSubmit);
  EXPECT_EQ(o.address, "h:1");
  EXPECT_EQ(o.target, "echo");
  EXPECT_EQ(o.payload_source, PayloadSource::kString);
  EXPECT_EQ(o.payload, "hi");
  EXPECT_EQ(o.key, "k");
  EXPECT_EQ(o.idempotency_key, "ik");
  EXPECT_EQ(o.timeout, std::chrono::nanoseconds(2s));
  EXPECT_EQ(o.deadline, std::chrono::nanoseconds(500ms));
  EXPECT_TRUE(o.wait);
  EXPECT_EQ(o.output, OutputFormat::kJson);
}

TEST(TroupectlOptions, AddressComesFromFlagThenEnvThenDefault) {
  EXPECT_EQ(ok({"troupes"}).address, "localhost:50051");
  EXPECT_EQ(ok({"troupes"}, "env:7").address, "env:7");
  EXPECT_EQ(ok({"troupes"}, "").address, "localhost:50051");
  EXPECT_EQ(ok({"--address=flag:9", "troupes"}, "env:7").address, "flag:9");
}

TEST(TroupectlOptions, EachCommandAndItsOperand) {
  EXPECT_EQ(ok({"get", "j1"}).command, Command::kGet);
  EXPECT_EQ(ok({"watch", "j1"}).command, Command::kWatch);
  EXPECT_EQ(ok({"cancel", "j1"}).target, "j1");
  EXPECT_EQ(ok({"troupe", "echo"}).command, Command::kTroupe);
  const auto dead = ok({"dead", "echo", "--limit", "5"});
  EXPECT_EQ(dead.command, Command::kDead);
  EXPECT_EQ(dead.limit, 5u);
  EXPECT_EQ(ok({"cluster"}).command, Command::kCluster);
  EXPECT_EQ(ok({"health"}).target, "");
  EXPECT_EQ(ok({"health", "echo"}).target, "echo");
  EXPECT_EQ(ok({"--help"}).command, Command::kHelp);
  EXPECT_EQ(ok({"submit", "echo", "-h"}).command, Command::kHelp);
}

TEST(TroupectlOptions, BulkStdinAndPayloadFile) {
  const auto bulk = ok({"submit", "echo", "-", "--window", "8", "--no-progress"});
  EXPECT_EQ(bulk.payload_source, PayloadSource::kStdinLines);
  EXPECT_EQ(bulk.window, 8u);
  EXPECT_FALSE(bulk.progress);
  const auto file = ok({"submit", "echo", "--payload-file", "/tmp/x"});
  EXPECT_EQ(file.payload_source, PayloadSource::kFile);
  EXPECT_EQ(file.payload, "/tmp/x");
  EXPECT_EQ(ok({"submit", "echo"}).payload_source, PayloadSource::kNone);
}

TEST(TroupectlOptions, RejectsBadCommandLinesWithAHint) {
  EXPECT_NE(bad({}).find("no command"), std::string::npos);
  EXPECT_NE(bad({"frobnicate"}).find("unknown command 'frobnicate'"), std::string::npos);
  EXPECT_NE(bad({"submit"}).find("troupe name"), std::string::npos);
  EXPECT_NE(bad({"get"}).find("job id"), std::string::npos);
  EXPECT_NE(bad({"get", "a", "b"}).find("too many"), std::string::npos);
  EXPECT_NE(bad({"troupes", "x"}).find("too many"), std::string::npos);
  EXPECT_NE(bad({"cluster", "x"}).find("too many"), std::string::npos);
  EXPECT_NE(bad({"--output", "yaml", "troupes"}).find("text or json"), std::string::npos);
  EXPECT_NE(bad({"--deadline", "10", "troupes"}).find("duration"), std::string::npos);
  EXPECT_NE(bad({"--deadline", "0s", "troupes"}).find("positive"), std::string::npos);
  EXPECT_NE(bad({"submit", "e", "--payload"}).find("needs a value"), std::string::npos);
  EXPECT_NE(bad({"submit", "e", "--payload", "a", "-"}).find("once"), std::string::npos);
  EXPECT_NE(bad({"submit", "e", "-", "--wait"}).find("cannot --wait"), std::string::npos);
  EXPECT_NE(bad({"get", "j", "--wait"}).find("submit only"), std::string::npos);
  EXPECT_NE(bad({"troupes", "--limit", "3"}).find("dead only"), std::string::npos);
  EXPECT_NE(bad({"dead", "e", "--limit", "x"}).find("whole number"), std::string::npos);
  EXPECT_NE(bad({"submit", "e", "-", "--window", "0"}).find("> 0"), std::string::npos);
  EXPECT_NE(bad({"--bogus", "troupes"}).find("unknown option --bogus"), std::string::npos);
  EXPECT_NE(bad({"--wait=yes", "submit", "e"}).find("takes no value"), std::string::npos);
  EXPECT_NE(bad({"frobnicate"}).find("troupectl --help"), std::string::npos);
}

// Durations are the config's syntax (syntax/duration.h): compounds yes,
// fractions no, with the same words as a config error.
TEST(TroupectlOptions, DurationsFollowTheConfigSyntax) {
  EXPECT_EQ(ok({"--deadline", "1m30s", "troupes"}).deadline, std::chrono::nanoseconds(90s));
  EXPECT_EQ(ok({"submit", "e", "--timeout", "250ms"}).timeout, std::chrono::nanoseconds(250ms));
  const std::string fraction = bad({"--deadline", "1.5s", "troupes"});
  EXPECT_NE(fraction.find("fractions are not supported"), std::string::npos) << fraction;
  EXPECT_NE(fraction.find("1500ms"), std::string::npos) << fraction;
  EXPECT_NE(bad({"--deadline", "99999999h", "troupes"}).find("too large"), std::string::npos);
}

TEST(TroupectlOptions, HelpDocumentsEveryExitCode) {
  const std::string help = usage_text();
  for (const char* line : {"  0  success", "  1  the job ended", "  2  usage error",
                           "  3  not found", "  4  unavailable", "  5  any other"}) {
    EXPECT_NE(help.find(line), std::string::npos) << line;
  }
}

}  // namespace
}  // namespace troupe::troupectl

namespace troupe::troupectl {
namespace {

TEST(TroupectlOptions, ConnectionFlagsForTlsAndTokens) {
  const auto o = ok({"--tls", "--ca", "ca.pem", "--cert=c.pem", "--cert-key", "k.pem",
                     "--token-file", "t", "troupes"});
  EXPECT_TRUE(o.connection.tls);
  EXPECT_EQ(o.connection.ca_file, "ca.pem");
  EXPECT_EQ(o.connection.cert_file, "c.pem");
  EXPECT_EQ(o.connection.key_file, "k.pem");
  EXPECT_EQ(o.connection.token_file, "t");
  EXPECT_EQ(ok({"--token", "abc", "troupes"}).connection.token, "abc");
  EXPECT_NE(bad({"--tls=yes", "troupes"}).find("--tls takes no value"), std::string::npos);
  EXPECT_NE(bad({"troupes", "--ca"}).find("--ca needs a value"), std::string::npos);
}

TEST(OpenConnection, TheTokenComesFromTheFlagThenTheFileThenTheEnvironment) {
  tools::ConnectionOptions options;
  EXPECT_EQ(tools::open_connection(options, " env-token\n").token, "env-token");
  EXPECT_EQ(tools::open_connection(options, nullptr).token, "");
  options.token = "flag-token";
  EXPECT_EQ(tools::open_connection(options, "env-token").token, "flag-token");
  options.token.reset();
  options.token_file = "/nonexistent/token";
  EXPECT_EQ(tools::open_connection(options, "env-token").error,
            "cannot read --token-file /nonexistent/token");
}

TEST(OpenConnection, ACertificateNeedsItsKey) {
  tools::ConnectionOptions options;
  options.cert_file = "c.pem";
  EXPECT_EQ(tools::open_connection(options, nullptr).error,
            "give --cert and --cert-key together (a client certificate and its key)");
}

}  // namespace
}  // namespace troupe::troupectl
