#pragma once

/// The `exec` handler: runs one program per attempt, payload on stdin, stdout
/// as the result. See docs/handlers.md for the full contract.

#include <boost/asio/any_io_executor.hpp>
#include <cstddef>
#include <memory>
#include <string>

#include "core/clock.h"
#include "core/handler.h"
#include "handlers/exec/exec_options.h"

namespace troupe::core {

/// The exec handler's one classification: maps a waitpid() status to a
/// FailureClass. Exit 0 -> kNone; an exit code listed in
/// non_retryable_exit_codes -> kPermanent; any other exit code -> kRetryable;
/// killed by a signal -> kCrash (the attempt's caller reports a process it
/// killed itself, for a timeout, a cancel or max_output, otherwise).
FailureClass classify_exit(const ExecHandlerOptions& options, int wait_status);

/// "exited with status 3", "killed by SIGSEGV": for error messages.
std::string describe_exit(int wait_status);

/// SIGKILLs the process group of every exec job running in this process, and
/// of every one spawned from now on: for a daemon about to exit without
/// draining, so that nothing a job started outlives it. Returns how many
/// groups it killed. Thread-safe; after it, exec attempts fail as crashes.
std::size_t kill_exec_process_groups();

/// Builds the exec handler for one actor. `actor_executor` is the actor's
/// strand: every completion of the handler's I/O runs there, and `done` is
/// invoked there. `clock` must outlive the handler (it provides the
/// SIGTERM -> SIGKILL grace timer).
///
/// Side effect: the first call sets SIGPIPE to ignored in this process when it
/// is at its default (writing a payload to a child that closed its stdin must
/// fail with EPIPE, not kill the daemon). Children get default dispositions.
std::unique_ptr<Handler> make_exec_handler(const ExecHandlerOptions& options,
                                           boost::asio::any_io_executor actor_executor,
                                           Clock& clock);

}  // namespace troupe::core
