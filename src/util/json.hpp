// A small JSON reader for the files users hand to ebpfvm (map dumps), and string quoting for the
// JSON it writes. Depth and size are bounded; errors name the byte offset.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "ebpfvm/error.hpp"

namespace ebpfvm::json {

class Value {
 public:
  using Array = std::vector<Value>;
  using Object = std::vector<std::pair<std::string, Value>>;

  Value() = default;
  explicit Value(bool b) : v_(b) {}
  explicit Value(double d) : v_(d) {}
  explicit Value(std::string s) : v_(std::move(s)) {}
  explicit Value(Array a) : v_(std::move(a)) {}
  explicit Value(Object o) : v_(std::move(o)) {}

  bool is_null() const { return v_.index() == 0; }
  bool is_bool() const { return v_.index() == 1; }
  bool is_number() const { return v_.index() == 2; }
  bool is_string() const { return v_.index() == 3; }
  bool is_array() const { return v_.index() == 4; }
  bool is_object() const { return v_.index() == 5; }
  bool boolean() const { return std::get<1>(v_); }
  double number() const { return std::get<2>(v_); }
  const std::string& string() const { return std::get<3>(v_); }
  const Array& array() const { return std::get<4>(v_); }
  const Object& object() const { return std::get<5>(v_); }
  // Member of an object, or nullptr (also when this is not an object).
  const Value* get(std::string_view key) const;

 private:
  std::variant<std::monostate, bool, double, std::string, Array, Object> v_;
};

Result<Value> parse(std::string_view text);
// "text" with JSON escapes, quotes included.
std::string quote(std::string_view s);

}  // namespace ebpfvm::json
