#include "tools/common/health_client.h"

#include <grpcpp/client_context.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>

#include <condition_variable>
#include <mutex>

namespace troupe::tools {

const char* serving_status_name(ServingStatus s) {
  switch (s) {
    case ServingStatus::kServing:
      return "SERVING";
    case ServingStatus::kNotServing:
      return "NOT_SERVING";
    case ServingStatus::kServiceUnknown:
      return "SERVICE_UNKNOWN";
    case ServingStatus::kUnknown:
      break;
  }
  return "UNKNOWN";
}

namespace detail {

std::string encode_health_request(const std::string& service) {
  std::string out;
  if (service.empty()) return out;  // proto3 omits a default field
  out += static_cast<char>(0x0A);   // field 1, length-delimited
  std::uint64_t len = service.size();
  while (len >= 0x80) {
    out += static_cast<char>((len & 0x7F) | 0x80);
    len >>= 7;
  }
  out += static_cast<char>(len);
  out += service;
  return out;
}

ServingStatus decode_health_response(const std::string& bytes) {
  // HealthCheckResponse has one field: 1 = status (varint). Skip anything else.
  std::size_t i = 0;
  auto read_varint = [&](std::uint64_t& v) {
    v = 0;
    for (int shift = 0; i < bytes.size() && shift < 64; shift += 7) {
      const auto b = static_cast<unsigned char>(bytes[i++]);
      v |= static_cast<std::uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  };
  ServingStatus result = ServingStatus::kUnknown;
  while (i < bytes.size()) {
    std::uint64_t tag = 0;
    if (!read_varint(tag)) return ServingStatus::kUnknown;
    const auto field = tag >> 3;
    const auto wire_type = tag & 7;
    std::uint64_t v = 0;
    if (wire_type == 0) {
      if (!read_varint(v)) return ServingStatus::kUnknown;
      if (field == 1 && v <= 3) result = static_cast<ServingStatus>(v);
    } else if (wire_type == 2) {
      if (!read_varint(v) || v > bytes.size() - i) return ServingStatus::kUnknown;
      i += v;
    } else {
      return ServingStatus::kUnknown;
    }
  }
  return result;
}

}  // namespace detail

HealthResult check_health(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
                          std::chrono::milliseconds deadline) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + deadline);
  const std::string encoded = detail::encode_health_request(service);
  grpc::Slice slice(encoded);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;

  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  HealthResult result;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status status) {
                   std::lock_guard lock(mu);
                   result.status = std::move(status);
                   done = true;
                   cv.notify_one();
                 });
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return done; });
  if (result.status.ok()) {
    std::vector<grpc::Slice> slices;
    std::string bytes;
    if (response.Dump(&slices).ok()) {
      for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    result.serving = detail::decode_health_response(bytes);
  }
  return result;
}

}  // namespace troupe::tools
