#include "util/json.hpp"

#include <cstdio>
#include <cstdlib>

namespace ebpfvm::json {
namespace {

constexpr int kMaxDepth = 64;

class Parser {
 public:
  explicit Parser(std::string_view t) : t_(t) {}

  Result<Value> document() {
    auto v = value(0);
    if (!v) return v;
    ws();
    if (i_ != t_.size()) return fail("unexpected text after the JSON value");
    return v;
  }

 private:
  Error fail(const std::string& why) const {
    return make_error(Errc::InvalidArgument, "JSON: " + why + " at byte " + std::to_string(i_));
  }
  void ws() {
    while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\n' || t_[i_] == '\r' || t_[i_] == '\t')) ++i_;
  }
  bool eat(char c) {
    ws();
    if (i_ < t_.size() && t_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool word(std::string_view w) {
    if (t_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }

  Result<Value> value(int depth) {
    if (depth > kMaxDepth) return fail("nesting deeper than 64");
    ws();
    if (i_ >= t_.size()) return fail("unexpected end");
    char c = t_[i_];
    if (c == '{') return object(depth);
    if (c == '[') return array(depth);
    if (c == '"') {
      auto s = string();
      if (!s) return s.error();
      return Value(std::move(*s));
    }
    if (word("true")) return Value(true);
    if (word("false")) return Value(false);
    if (word("null")) return Value();
    return number();
  }

  Result<Value> number() {
    std::string buf;
    while (i_ < t_.size() && (std::isdigit(static_cast<unsigned char>(t_[i_])) || std::string_view("+-.eExX").find(t_[i_]) != std::string_view::npos))
      buf += t_[i_++];
    if (buf.empty()) return fail("expected a value");
    char* end = nullptr;
    double d = std::strtod(buf.c_str(), &end);
    if (*end) return fail("bad number '" + buf + "'");
    return Value(d);
  }

  Result<std::string> string() {
    ++i_;  // opening quote
    std::string out;
    while (i_ < t_.size()) {
      char c = t_[i_++];
      if (c == '"') return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= t_.size()) break;
      char e = t_[i_++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          if (t_.size() - i_ < 4) return fail("truncated \\u escape");
          unsigned cp = static_cast<unsigned>(std::strtoul(std::string(t_.substr(i_, 4)).c_str(), nullptr, 16));
          i_ += 4;
          if (cp < 0x80) out += static_cast<char>(cp);
          else if (cp < 0x800) { out += static_cast<char>(0xc0 | (cp >> 6)); out += static_cast<char>(0x80 | (cp & 0x3f)); }
          else { out += static_cast<char>(0xe0 | (cp >> 12)); out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f)); out += static_cast<char>(0x80 | (cp & 0x3f)); }
          break;
        }
        default: out += e;
      }
    }
    return fail("unterminated string");
  }

  Result<Value> array(int depth) {
    ++i_;
    Value::Array a;
    if (eat(']')) return Value(std::move(a));
    do {
      auto v = value(depth + 1);
      if (!v) return v;
      a.push_back(std::move(*v));
    } while (eat(','));
    if (!eat(']')) return fail("expected ',' or ']'");
    return Value(std::move(a));
  }

  Result<Value> object(int depth) {
    ++i_;
    Value::Object o;
    if (eat('}')) return Value(std::move(o));
    do {
      ws();
      if (i_ >= t_.size() || t_[i_] != '"') return fail("expected a member name");
      auto k = string();
      if (!k) return k.error();
      if (!eat(':')) return fail("expected ':'");
      auto v = value(depth + 1);
      if (!v) return v;
      o.emplace_back(std::move(*k), std::move(*v));
    } while (eat(','));
    if (!eat('}')) return fail("expected ',' or '}'");
    return Value(std::move(o));
  }

  std::string_view t_;
  size_t i_ = 0;
};

}  // namespace

const Value* Value::get(std::string_view key) const {
  if (!is_object()) return nullptr;
  for (const auto& [k, v] : object())
    if (k == key) return &v;
  return nullptr;
}

Result<Value> parse(std::string_view text) { return Parser(text).document(); }

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", c);
          out += b;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

}  // namespace ebpfvm::json
