#pragma once

#include <cstddef>
#include <memory>
#include <utility>

namespace troupe::core::detail {

/// A growable FIFO ring buffer that allocates nothing until the first push
/// (std::deque allocates on construction, which an idle actor cannot afford)
/// and gives its storage back once a large burst has drained. Not
/// thread-safe: its owner's lock guards it.
template <typename T>
class RingQueue {
 public:
  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return capacity_; }

  T& front() noexcept { return buffer_[head_]; }

  void push_back(T value) {
    if (size_ == capacity_) grow();
    buffer_[(head_ + size_) & (capacity_ - 1)] = std::move(value);
    ++size_;
  }

  void push_front(T value) {
    if (size_ == capacity_) grow();
    head_ = (head_ + capacity_ - 1) & (capacity_ - 1);
    buffer_[head_] = std::move(value);
    ++size_;
  }

  T pop_front() {
    T value = std::move(buffer_[head_]);
    head_ = (head_ + 1) & (capacity_ - 1);
    --size_;
    if (size_ == 0 && capacity_ > kKeepCapacity) release();
    return value;
  }

  /// Visits every element front to back.
  template <typename F>
  void for_each(F&& f) {
    for (std::size_t i = 0; i < size_; ++i) f(buffer_[(head_ + i) & (capacity_ - 1)]);
  }

  void clear() {
    while (!empty()) pop_front();
  }

 private:
  static constexpr std::size_t kKeepCapacity = 4096;

  void grow() {
    const std::size_t next = capacity_ == 0 ? 8 : capacity_ * 2;
    auto bigger = std::make_unique<T[]>(next);
    for (std::size_t i = 0; i < size_; ++i) {
      bigger[i] = std::move(buffer_[(head_ + i) & (capacity_ - 1)]);
    }
    buffer_ = std::move(bigger);
    capacity_ = next;
    head_ = 0;
  }

  void release() {
    buffer_.reset();
    capacity_ = 0;
    head_ = 0;
  }

  std::unique_ptr<T[]> buffer_;
  std::size_t capacity_ = 0;  // always 0 or a power of two
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

}  // namespace troupe::core::detail
