#pragma once

/// trouped's services register every method raw (requests and replies as
/// grpc::ByteBuffer) and parse and serialize the messages here, so that a
/// request protobuf cannot parse (garbage, an invalid wire type, a `string`
/// field that is not UTF-8) is answered INVALID_ARGUMENT "could not parse
/// request ...", as docs/api.md promises and as gRPC's health service does.
/// With typed callback methods gRPC 1.51 answers such a request itself, with
/// UNIMPLEMENTED and an empty message (CallbackUnaryHandler::RunHandler and
/// its streaming siblings give up on a failed Deserialize). Pure functions;
/// thread-safe.

#include <grpcpp/impl/codegen/proto_utils.h>  // SerializationTraits for protobuf messages
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/server_callback.h>

#include <optional>

#include "daemon/status_mapping.h"

namespace troupe::daemon {

/// Parses `bytes` into `out`; INVALID_ARGUMENT naming the message type when
/// they are not one.
template <class Message>
std::optional<RpcError> parse_request(const grpc::ByteBuffer& bytes, Message& out) {
  grpc::ByteBuffer view(bytes);  // shares the slices; the reader consumes the view
  if (grpc::SerializationTraits<Message>::Deserialize(&view, &out).ok()) return std::nullopt;
  return unparseable_request(Message::descriptor()->full_name());
}

/// Serializes `message` into `out`.
template <class Message>
void serialize_reply(const Message& message, grpc::ByteBuffer& out) {
  bool own_buffer = false;
  // Fails only past 2 GiB, which no reply of ours reaches (the server's send
  // limit would refuse it first).
  (void)grpc::SerializationTraits<Message>::Serialize(message, &out, &own_buffer);
}

/// Completes one unary call whose answer comes later, from a callback on
/// another thread (the runtime's or the journal's), or inline. Copyable;
/// exactly one of its copies must be used, exactly once: the call stays open
/// (and `context` valid) until then.
template <class Response>
class UnaryReply {
 public:
  UnaryReply(grpc::CallbackServerContext& context, grpc::ServerUnaryReactor& reactor,
             grpc::ByteBuffer& out)
      : context_(&context), reactor_(&reactor), out_(&out) {}

  grpc::CallbackServerContext& context() const { return *context_; }
  void ok(const Response& response) const {
    serialize_reply(response, *out_);
    reactor_->Finish(grpc::Status::OK);
  }
  void fail(const RpcError& error) const { finish(*context_, *reactor_, error); }

 private:
  grpc::CallbackServerContext* context_;
  grpc::ServerUnaryReactor* reactor_;
  grpc::ByteBuffer* out_;
};

/// A unary call answered when its answer is known, which may be after the
/// method returned: parses the request and runs
/// `serve(const Request&, UnaryReply<Response>)`, which answers through the
/// reply (at once, or from a callback).
template <class Request, class Response, class Serve>
grpc::ServerUnaryReactor* answer_later(grpc::CallbackServerContext& context,
                                       const grpc::ByteBuffer& in, grpc::ByteBuffer& out,
                                       Serve&& serve) {
  auto* reactor = context.DefaultReactor();
  Request request;
  if (auto error = parse_request(in, request)) {
    finish(context, *reactor, *error);
    return reactor;
  }
  serve(request, UnaryReply<Response>(context, *reactor, out));
  return reactor;
}

/// A unary call answered at once on the gRPC thread: parses the request,
/// runs `serve(const Request&, Response&) -> std::optional<RpcError>` and
/// finishes with the serialized response, or with the error.
template <class Request, class Response, class Serve>
grpc::ServerUnaryReactor* answer_now(grpc::CallbackServerContext& context,
                                     const grpc::ByteBuffer& in, grpc::ByteBuffer& out,
                                     Serve&& serve) {
  return answer_later<Request, Response>(
      context, in, out, [&serve](const Request& request, UnaryReply<Response> reply) {
        Response response;
        if (auto error = serve(request, response)) return reply.fail(*error);
        reply.ok(response);
      });
}

}  // namespace troupe::daemon
