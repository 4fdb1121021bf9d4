#include "tools/troupectl/commands.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tools/common/connection.h"
#include "tools/common/exit_code.h"
#include "tools/common/health_client.h"
#include "tools/common/json_writer.h"
#include "tools/common/windowed_stream.h"
#include "troupe/v1/troupe.grpc.pb.h"

namespace troupe::troupectl {
namespace {

using tools::ExitCode;
using tools::JsonWriter;
namespace pb = ::troupe::v1;

constexpr auto kDefaultDeadline = std::chrono::seconds(10);

int code(ExitCode c) {
  return static_cast<int>(c);
}

int rpc_failed(const grpc::Status& status, const Options& opts) {
  std::fprintf(stderr, "troupectl: %s\n", tools::describe_rpc_error(status, opts.address).c_str());
  return code(tools::exit_code_for(status.error_code()));
}

void set_deadline(grpc::ClientContext& ctx, const Options& opts, bool unbounded_by_default) {
  if (opts.deadline) {
    // A duration may reach ~292 years, past the clock's range: saturate
    // (gRPC reads time_point::max() as no deadline) instead of overflowing.
    using TimePoint = std::chrono::system_clock::time_point;
    const TimePoint now = std::chrono::system_clock::now();
    const auto d = std::chrono::duration_cast<TimePoint::duration>(*opts.deadline);
    ctx.set_deadline(d > TimePoint::max() - now ? TimePoint::max() : now + d);
  } else if (!unbounded_by_default) {
    ctx.set_deadline(std::chrono::system_clock::now() + kDefaultDeadline);
  }
}

std::string to_json(const google::protobuf::Message& msg) {
  google::protobuf::util::JsonPrintOptions o;
  o.always_print_primitive_fields = true;
  o.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(msg, &out, o);
  return out;
}

std::string state_name(pb::JobState s) {
  std::string name = pb::JobState_Name(s);
  const std::string prefix = "JOB_STATE_";
  return name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : name;
}

std::string circuit_name(pb::CircuitState s) {
  std::string name = pb::CircuitState_Name(s);
  const std::string prefix = "CIRCUIT_STATE_";
  return name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : name;
}

bool is_terminal(pb::JobState s) {
  return s == pb::JOB_STATE_SUCCEEDED || s == pb::JOB_STATE_FAILED || s == pb::JOB_STATE_DEAD ||
         s == pb::JOB_STATE_CANCELLED || s == pb::JOB_STATE_ABORTED;
}

std::string timestamp(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0 && ts.nanos() == 0) return "-";
  return google::protobuf::util::TimeUtil::ToString(ts);
}

void print_job_text(const pb::Job& job) {
  std::printf("id:          %s\n", job.id().c_str());
  std::printf("troupe:      %s\n", job.troupe().c_str());
  std::printf("state:       %s\n", state_name(job.state()).c_str());
  std::printf("attempts:    %u\n", job.attempts());
  if (!job.key().empty()) std::printf("key:         %s\n", job.key().c_str());
  if (!job.idempotency_key().empty()) {
    std::printf("idempotency: %s\n", job.idempotency_key().c_str());
  }
  std::printf("submitted:   %s\n", timestamp(job.submitted_at()).c_str());
  std::printf("started:     %s\n", timestamp(job.started_at()).c_str());
  std::printf("finished:    %s\n", timestamp(job.finished_at()).c_str());
  if (!job.error().empty()) {
    std::string fc = pb::FailureClass_Name(job.failure_class());
    std::printf("error:       %s (%s)\n", job.error().c_str(), fc.c_str());
  }
  if (job.state() == pb::JOB_STATE_SUCCEEDED) {
    std::printf("result:      %s\n", job.result().c_str());
  }
}

void print_job(const pb::Job& job, const Options& opts) {
  if (opts.output == OutputFormat::kJson) {
    std::printf("%s\n", to_json(job).c_str());
  } else {
    print_job_text(job);
  }
}

int job_exit(const pb::Job& job) {
  return job.state() == pb::JOB_STATE_SUCCEEDED ? code(ExitCode::kOk)
                                                : code(ExitCode::kJobUnsuccessful);
}

void fill_submit(pb::SubmitRequest& req, const Options& opts) {
  req.set_troupe(opts.target);
  if (!opts.key.empty()) req.set_key(opts.key);
  if (!opts.idempotency_key.empty()) req.set_idempotency_key(opts.idempotency_key);
  if (opts.timeout) {
    *req.mutable_timeout() = google::protobuf::util::TimeUtil::NanosecondsToDuration(
        static_cast<std::int64_t>(opts.timeout->count()));
  }
}

int submit_one(pb::JobService::Stub& stub, const Options& opts) {
  pb::SubmitRequest req;
  fill_submit(req, opts);
  if (opts.payload_source == PayloadSource::kString) {
    req.set_payload(opts.payload);
  } else if (opts.payload_source == PayloadSource::kFile) {
    std::ifstream in(opts.payload, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "troupectl: cannot read --payload-file %s: check the path\n",
                   opts.payload.c_str());
      return code(ExitCode::kUsage);
    }
    std::ostringstream buf;
    buf << in.rdbuf();
    req.set_payload(buf.str());
  }
  req.set_wait(opts.wait);
  grpc::ClientContext ctx;
  set_deadline(ctx, opts, opts.wait);
  pb::SubmitResponse resp;
  const grpc::Status status = stub.Submit(&ctx, req, &resp);
  if (!status.ok()) return rpc_failed(status, opts);
  if (opts.output == OutputFormat::kJson) {
    std::printf("%s\n", to_json(resp).c_str());
  } else if (opts.wait) {
    print_job_text(resp.job());
  } else {
    std::printf("%s%s\n", resp.job_id().c_str(), resp.duplicate() ? " (duplicate)" : "");
  }
  return opts.wait ? job_exit(resp.job()) : code(ExitCode::kOk);
}

/// Draws "[#####     ] 512/1000 accepted 500 rejected 12" on stderr.
void draw_progress(std::uint64_t done, std::uint64_t total, std::uint64_t accepted,
                   std::uint64_t rejected) {
  constexpr int kWidth = 30;
  const int filled = total == 0 ? kWidth : static_cast<int>(done * kWidth / total);
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.resize(kWidth, ' ');
  std::fprintf(stderr, "\r[%s] %llu/%llu accepted %llu rejected %llu", bar.c_str(),
               static_cast<unsigned long long>(done), static_cast<unsigned long long>(total),
               static_cast<unsigned long long>(accepted),
               static_cast<unsigned long long>(rejected));
  std::fflush(stderr);
}

int submit_bulk(pb::JobService::Stub& stub, const Options& opts) {
  // Read every line first: the producer then never blocks a gRPC thread on stdin.
  std::vector<std::string> lines;
  for (std::string line; std::getline(std::cin, line);) lines.push_back(std::move(line));
  const bool show_progress = opts.progress && ::isatty(STDERR_FILENO) == 1;

  struct Outcome {
    std::string job_id;
    int code = 0;
    std::string message;
    bool duplicate = false;
  };
  std::vector<Outcome> outcomes(lines.size());
  std::size_t next_index = 0;
  std::uint64_t acked = 0;
  std::uint64_t accepted = 0;
  std::uint64_t rejected = 0;
  std::map<int, std::uint64_t> rejected_by_code;
  auto last_draw = std::chrono::steady_clock::now();

  pb::SubmitRequest base;
  fill_submit(base, opts);
  tools::WindowedStream<pb::StreamSubmitRequest, pb::StreamSubmitAck> stream(
      opts.window,
      [&](pb::StreamSubmitRequest& req) {
        if (next_index >= lines.size()) return false;
        req.set_correlation_id(next_index);
        *req.mutable_request() = base;
        req.mutable_request()->set_payload(lines[next_index]);
        ++next_index;
        return true;
      },
      [&](const pb::StreamSubmitAck& ack) {
        ++acked;
        if (ack.correlation_id() < outcomes.size()) {
          auto& o = outcomes[ack.correlation_id()];
          o.job_id = ack.job_id();
          o.code = ack.code();
          o.message = ack.message();
          o.duplicate = ack.duplicate();
        }
        if (ack.code() == 0) {
          ++accepted;
        } else {
          ++rejected;
          ++rejected_by_code[ack.code()];
        }
        const auto now = std::chrono::steady_clock::now();
        if (show_progress &&
            (now - last_draw > std::chrono::milliseconds(100) || acked == lines.size())) {
          last_draw = now;
          draw_progress(acked, lines.size(), accepted, rejected);
        }
      });
  // No overall deadline by default: a large file may take a while.
  if (opts.deadline) set_deadline(stream.context(), opts, true);
  if (lines.empty()) {
    std::fprintf(stderr, "troupectl: stdin had no lines: nothing submitted\n");
    return code(ExitCode::kOk);
  }
  stream.start([&](grpc::ClientContext* ctx,
                   grpc::ClientBidiReactor<pb::StreamSubmitRequest, pb::StreamSubmitAck>* r) {
    stub.async()->SubmitStream(ctx, r);
  });
  const grpc::Status status = stream.wait();
  if (show_progress) std::fputc('\n', stderr);

  const std::uint64_t unanswered = lines.size() - acked;
  if (opts.output == OutputFormat::kJson) {
    JsonWriter w;
    w.begin_object();
    w.key("lines").value(static_cast<std::uint64_t>(lines.size()));
    w.key("accepted").value(accepted);
    w.key("rejected").value(rejected);
    w.key("unanswered").value(unanswered);
    w.key("rejected_by_code").begin_object();
    for (const auto& [c, n] : rejected_by_code) {
      w.key(tools::status_code_name(static_cast<grpc::StatusCode>(c))).value(n);
    }
    w.end_object();
    w.key("stream_status").value(tools::status_code_name(status.error_code()));
    w.key("jobs").begin_array();
    for (std::size_t i = 0; i < acked && i < outcomes.size(); ++i) {
      const auto& o = outcomes[i];
      w.begin_object().key("line").value(static_cast<std::uint64_t>(i + 1));
      if (o.code == 0) {
        w.key("job_id").value(o.job_id).key("duplicate").value(o.duplicate);
      } else {
        w.key("code")
            .value(tools::status_code_name(static_cast<grpc::StatusCode>(o.code)))
            .key("message")
            .value(o.message);
      }
      w.end_object();
    }
    w.end_array().end_object();
    std::printf("%s\n", w.str().c_str());
  } else {
    for (std::size_t i = 0; i < acked && i < outcomes.size(); ++i) {
      const auto& o = outcomes[i];
      if (o.code == 0) {
        std::printf("%s\n", o.job_id.c_str());
      } else {
        std::fprintf(stderr, "line %zu: rejected %s: %s\n", i + 1,
                     tools::status_code_name(static_cast<grpc::StatusCode>(o.code)).c_str(),
                     o.message.c_str());
      }
    }
    std::fprintf(stderr, "submitted %zu lines: %llu accepted, %llu rejected", lines.size(),
                 static_cast<unsigned long long>(accepted),
                 static_cast<unsigned long long>(rejected));
    for (const auto& [c, n] : rejected_by_code) {
      std::fprintf(stderr, " %s=%llu",
                   tools::status_code_name(static_cast<grpc::StatusCode>(c)).c_str(),
                   static_cast<unsigned long long>(n));
    }
    if (unanswered > 0) {
      std::fprintf(stderr, ", %llu unanswered", static_cast<unsigned long long>(unanswered));
    }
    std::fputc('\n', stderr);
  }
  if (!status.ok()) return rpc_failed(status, opts);
  if (unanswered > 0) return code(ExitCode::kRpcError);
  if (rejected > 0) {
    // The most specific reason wins: first rejection code in code order.
    return code(
        tools::exit_code_for(static_cast<grpc::StatusCode>(rejected_by_code.begin()->first)));
  }
  return code(ExitCode::kOk);
}

int get_job(pb::JobService::Stub& stub, const Options& opts) {
  pb::GetJobRequest req;
  req.set_job_id(opts.target);
  grpc::ClientContext ctx;
  set_deadline(ctx, opts, false);
  pb::Job job;
  const grpc::Status status = stub.GetJob(&ctx, req, &job);
  if (!status.ok()) return rpc_failed(status, opts);
  print_job(job, opts);
  return code(ExitCode::kOk);
}

int watch_job(pb::JobService::Stub& stub, const Options& opts) {
  pb::WatchJobRequest req;
  req.set_job_id(opts.target);
  grpc::ClientContext ctx;
  set_deadline(ctx, opts, true);
  auto reader = stub.WatchJob(&ctx, req);
  pb::Job job;
  pb::Job last;
  bool any = false;
  while (reader->Read(&job)) {
    any = true;
    last = job;
    if (opts.output == OutputFormat::kJson) {
      std::printf("%s\n", to_json(job).c_str());
    } else {
      std::printf("%s %s attempts=%u%s%s\n", job.id().c_str(), state_name(job.state()).c_str(),
                  job.attempts(), job.error().empty() ? "" : " error=", job.error().c_str());
    }
    std::fflush(stdout);
  }
  const grpc::Status status = reader->Finish();
  if (!status.ok()) return rpc_failed(status, opts);
  if (!any || !is_terminal(last.state())) {
    std::fprintf(stderr, "troupectl: the watch ended before the job finished; run it again\n");
    return code(ExitCode::kRpcError);
  }
  if (opts.output == OutputFormat::kText && last.state() == pb::JOB_STATE_SUCCEEDED) {
    std::printf("result: %s\n", last.result().c_str());
  }
  return job_exit(last);
}

int cancel_job(pb::JobService::Stub& stub, const Options& opts) {
  pb::CancelJobRequest req;
  req.set_job_id(opts.target);
  grpc::ClientContext ctx;
  set_deadline(ctx, opts, false);
  pb::CancelJobResponse resp;
  const grpc::Status status = stub.CancelJob(&ctx, req, &resp);
  if (!status.ok()) return rpc_failed(status, opts);
  if (opts.output == OutputFormat::kJson) {
    std::printf("%s\n", to_json(resp).c_str());
  } else if (resp.cancelled()) {
    std::printf("%s cancelled\n", resp.job().id().c_str());
  } else {
    std::printf("%s already %s: nothing to cancel\n", resp.job().id().c_str(),
                state_name(resp.job().state()).c_str());
  }
  return code(ExitCode::kOk);
}

void print_troupe_row(const pb::Troupe& t) {
  std::printf("%-16s %-8s %-16s %3u/%-3u %6llu/%-7llu %-9s %-8s %10llu %8llu\n", t.name().c_str(),
              t.mode().c_str(), t.handler().c_str(), t.actors_busy(), t.actors(),
              static_cast<unsigned long long>(t.mailbox_depth()),
              static_cast<unsigned long long>(t.mailbox_capacity()),
              circuit_name(t.circuit_state()).c_str(),
              t.draining() ? "draining" : (t.degraded() ? "degraded" : "ok"),
              static_cast<unsigned long long>(t.counters().submitted()),
              static_cast<unsigned long long>(t.counters().in_flight()));
}

void print_troupe_header() {
  std::printf("%-16s %-8s %-16s %7s %14s %-9s %-8s %10s %8s\n", "NAME", "MODE", "HANDLER", "BUSY",
              "QUEUED/CAP", "CIRCUIT", "STATUS", "SUBMITTED", "INFLIGHT");
}

int list_troupes(pb::AdminService::Stub& stub, const Options& opts) {
  grpc::ClientContext ctx;
  set_deadline(ctx, opts, false);
  pb::ListTroupesResponse resp;
  const grpc::Status status = stub.ListTroupes(&ctx, pb::ListTroupesRequest(), &resp);
  if (!status.ok()) return rpc_failed(status, opts);
  if (opts.output == OutputFormat::kJson) {
    std::printf("%s\n", to_json(resp).c_str());
  } else {
    print_troupe_header();
    for (const auto& t : resp.troupes()) print_troupe_row(t);
  }
  return code(ExitCode::kOk);
}

int show_troupe(pb::AdminService::Stub& stub, const Options& opts) {
  grpc::ClientContext ctx;
  set_deadline(ctx, opts, false);
  pb::GetTroupeRequest req;
  req.set_name(opts.target);
  pb::Troupe t;
  const grpc::Status status = stub.GetTroupe(&ctx, req, &t);
  if (!status.ok()) return rpc_failed(status, opts);
  if (opts.output == OutputFormat::kJson) {
    std::printf("%s\n", to_json(t).c_str());
    return code(ExitCode::kOk);
  }
  const auto& c = t.counters();
  std::printf("name:         %s\n", t.name().c_str());
  std::printf("mode:         %s\n", t.mode().c_str());
  std::printf("handler:      %s\n", t.handler().c_str());
  std::printf("actors:       %u (busy %u, min %u, max %u)\n", t.actors(), t.actors_busy(),
              t.min_actors(), t.max_actors());
  std::printf("mailbox:      %llu queued of %llu\n",
              static_cast<unsigned long long>(t.mailbox_depth()),
              static_cast<unsigned long long>(t.mailbox_capacity()));
  std::printf("circuit:      %s\n", circuit_name(t.circuit_state()).c_str());
  std::printf("status:       %s\n", t.draining() ? "draining" : (t.degraded() ? "degraded" : "ok"));
  std::printf("dead letters: %llu\n", static_cast<unsigned long long>(t.dead_letters()));
  std::printf(
      "jobs:         submitted %llu, rejected %llu, succeeded %llu, failed %llu, dead %llu, "
      "cancelled %llu, aborted %llu, in flight %llu\n",
      static_cast<unsigned long long>(c.submitted()), static_cast<unsigned long long>(c.rejected()),
      static_cast<unsigned long long>(c.succeeded()), static_cast<unsigned long long>(c.failed()),
      static_cast<unsigned long long>(c.dead()), static_cast<unsigned long long>(c.cancelled()),
      static_cast<unsigned long long>(c.aborted()), static_cast<unsigned long long>(c.in_flight()));
  std::printf("attempts:     %llu (actor restarts %llu)\n",
              static_cast<unsigned long long>(c.attempts()),
              static_cast<unsigned long long>(c.actor_restarts()));
  return code(ExitCode::kOk);
}

int list_dead(pb::AdminService::Stub& stub, const Options& opts) {
  grpc::ClientContext ctx;
  set_deadline(ctx, opts, false);
  pb::ListDeadJobsRequest req;
  req.set_troupe(opts.target);
  req.set_limit(opts.limit);
  pb::ListDeadJobsResponse resp;
  const grpc::Status status = stub.ListDeadJobs(&ctx, req, &resp);
  if (!status.ok()) return rpc_failed(status, opts);
  if (opts.output == OutputFormat::kJson) {
    std::printf("%s\n", to_json(resp).c_str());
  } else {
    for (const auto& job : resp.jobs()) {
      std::printf("%s attempts=%u finished=%s error=%s\n", job.id().c_str(), job.attempts(),
                  timestamp(job.finished_at()).c_str(), job.error().c_str());
    }
    if (resp.jobs().empty())
      std::fprintf(stderr, "no dead jobs in troupe %s\n", opts.target.c_str());
  }
  return code(ExitCode::kOk);
}

/// "4.2s", "1m05s", "-" for none.
std::string age(const google::protobuf::Duration& d, bool set) {
  if (!set) return "-";
  const double s = static_cast<double>(d.seconds()) + d.nanos() / 1e9;
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%.1fs", s);
  } else {
    const auto whole = static_cast<long long>(s);
    std::snprintf(buf, sizeof buf, "%lldm%02llds", whole / 60, whole % 60);
  }
  return buf;
}

/// Seconds from `from` to `to` (negative when `to` is earlier).
double seconds_between(const google::protobuf::Timestamp& from,
                       const google::protobuf::Timestamp& to) {
  return static_cast<double>(to.seconds() - from.seconds()) + (to.nanos() - from.nanos()) / 1e9;
}

/// The HOLDER column of `troupectl cluster`: a singleton's lease holder and
/// the max_concurrency permits per replica; "-" for a troupe with neither.
std::string holders(const pb::ClusterTroupe& t, const google::protobuf::Timestamp& now) {
  std::vector<std::string> parts;
  char buf[64];
  if (t.has_lease()) {
    const auto& l = t.lease();
    const double left = seconds_between(now, l.expires_at());
    if (l.held()) {
      std::snprintf(buf, sizeof buf, "lease %.1fs left", left);
      parts.push_back(l.replica() + " (incarnation " + std::to_string(l.incarnation()) + ", term " +
                      std::to_string(l.term()) + ", " + buf + ")");
    } else if (l.incarnation() == 0) {
      parts.push_back("none (released, term " + std::to_string(l.term()) + ")");
    } else {
      const std::string who = l.replica().empty()
                                  ? "incarnation " + std::to_string(l.incarnation()) + " gone"
                                  : l.replica() + " expired";
      parts.push_back("none (term " + std::to_string(l.term()) + ", " + who + ")");
    }
  } else if (t.singleton()) {
    parts.push_back("none yet");
  }
  if (t.max_concurrency() > 0 || t.permits_size() > 0) {
    std::uint64_t held = 0;
    for (const auto& p : t.permits()) held += p.permits();
    std::string text = "permits " + std::to_string(held);
    if (t.max_concurrency() > 0) text += "/" + std::to_string(t.max_concurrency());
    for (int i = 0; i < t.permits_size(); ++i) {
      const auto& p = t.permits(i);
      text += (i == 0 ? ": " : ", ") + p.replica() + " " + std::to_string(p.permits());
    }
    parts.push_back(std::move(text));
  }
  if (parts.empty()) return "-";
  std::string out = parts[0];
  for (std::size_t i = 1; i < parts.size(); ++i) out += "; " + parts[i];
  return out;
}

int show_cluster(pb::AdminService::Stub& stub, const Options& opts) {
  grpc::ClientContext ctx;
  set_deadline(ctx, opts, false);
  pb::GetClusterResponse resp;
  const grpc::Status status = stub.GetCluster(&ctx, pb::GetClusterRequest(), &resp);
  if (!status.ok()) return rpc_failed(status, opts);
  if (opts.output == OutputFormat::kJson) {
    std::printf("%s\n", to_json(resp).c_str());
    return code(ExitCode::kOk);
  }
  std::printf("%-24s %12s %-6s %10s %s\n", "REPLICA", "INCARNATION", "ALIVE", "HEARTBEAT",
              "STARTED");
  for (const auto& r : resp.replicas()) {
    std::printf("%-24s %12lld %-6s %10s %s\n", r.name().c_str(),
                static_cast<long long>(r.incarnation()), r.alive() ? "yes" : "no",
                (age(r.heartbeat_age(), true) + " ago").c_str(), timestamp(r.started_at()).c_str());
  }
  std::printf("\n%-24s %12s %8s %12s %s\n", "TROUPE", "QUEUED", "RUNNING", "OLDEST", "HOLDER");
  for (const auto& t : resp.troupes()) {
    std::printf("%-24s %12llu %8llu %12s %s\n", t.name().c_str(),
                static_cast<unsigned long long>(t.queue_depth()),
                static_cast<unsigned long long>(t.running()),
                age(t.oldest_queued_age(), t.has_oldest_queued_age()).c_str(),
                holders(t, resp.now()).c_str());
  }
  return code(ExitCode::kOk);
}

int health(const std::shared_ptr<grpc::Channel>& channel, const Options& opts) {
  const auto deadline = std::chrono::duration_cast<std::chrono::milliseconds>(
      opts.deadline.value_or(kDefaultDeadline));
  const auto result = tools::check_health(channel, opts.target, deadline);
  if (!result.status.ok()) return rpc_failed(result.status, opts);
  const bool serving = result.serving == tools::ServingStatus::kServing;
  if (opts.output == OutputFormat::kJson) {
    JsonWriter w;
    w.begin_object()
        .key("service")
        .value(opts.target)
        .key("status")
        .value(tools::serving_status_name(result.serving))
        .end_object();
    std::printf("%s\n", w.str().c_str());
  } else {
    std::printf("%s\n", tools::serving_status_name(result.serving));
  }
  if (serving) return code(ExitCode::kOk);
  if (result.serving == tools::ServingStatus::kServiceUnknown) return code(ExitCode::kNotFound);
  return code(ExitCode::kJobUnsuccessful);
}

}  // namespace

int run_command(const Options& opts) {
  const auto connection = tools::open_connection(opts.connection, std::getenv("TROUPE_TOKEN"));
  if (!connection.error.empty()) {
    std::fprintf(stderr, "troupectl: %s\n", connection.error.c_str());
    return code(ExitCode::kUsage);
  }
  auto channel = tools::make_channel(opts.address, connection);
  pb::JobService::Stub jobs(channel);
  pb::AdminService::Stub admin(channel);
  switch (opts.command) {
    case Command::kSubmit:
      return opts.payload_source == PayloadSource::kStdinLines ? submit_bulk(jobs, opts)
                                                               : submit_one(jobs, opts);
    case Command::kGet:
      return get_job(jobs, opts);
    case Command::kWatch:
      return watch_job(jobs, opts);
    case Command::kCancel:
      return cancel_job(jobs, opts);
    case Command::kTroupes:
      return list_troupes(admin, opts);
    case Command::kTroupe:
      return show_troupe(admin, opts);
    case Command::kDead:
      return list_dead(admin, opts);
    case Command::kCluster:
      return show_cluster(admin, opts);
    case Command::kHealth:
      return health(channel, opts);
    case Command::kHelp:
      break;
  }
  return code(ExitCode::kOk);
}

}  // namespace troupe::troupectl
