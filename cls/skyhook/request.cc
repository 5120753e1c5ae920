#include "request.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <string_view>

#include "errors.h"

namespace skyhook {
namespace {

constexpr std::array<std::string_view, 43> kFunctions = {
    // elementwise (Arrow compute names)
    "less", "less_equal", "greater", "greater_equal", "equal", "not_equal", "add", "subtract",
    "multiply", "divide", "and_kleene", "or_kleene", "invert", "abs", "negate",
    // math (skyhook_dask/query/expr.py: MATH, atan2, power)
    "sqrt", "exp", "ln", "log10", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh",
    "tanh", "floor", "ceil", "atan2", "power",
    // x[i]: a value and an int64 literal index; coalesce(comparison, false) for missing values
    "list_element", "coalesce",
    // numbers as float64, large integers rounded (the cast divide makes too)
    "to_float64",
    // x[mask]: the elements of each event's list where the mask is true
    "list_filter",
    // per-event list reductions
    "any", "all", "count", "len", "sum", "min", "max"};

constexpr std::array<std::string_view, 7> kReductions = {"any", "all", "count", "len",
                                                         "sum", "min", "max"};

// Strict UTF-8 as Python's bytes.decode() accepts it: no overlong forms, no surrogates,
// nothing above U+10FFFF.
bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    size_t extra;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      extra = 1, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      extra = 2, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      extra = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i - 1 < extra) return false;
    for (size_t k = 1; k <= extra; ++k) {
      const auto cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += extra + 1;
  }
  return true;
}

class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  const uint8_t* Take(size_t n) {
    if (n > remaining()) {
      Fail(EINVAL, "request truncated at byte " + std::to_string(pos_) + " (wanted " +
                       std::to_string(n) + " more)");
    }
    const uint8_t* chunk = data_ + pos_;
    pos_ += n;
    return chunk;
  }

  template <typename T>
  T Unpack() {  // little-endian on the wire and on every host Ceph runs on here
    T value;
    std::memcpy(&value, Take(sizeof(T)), sizeof(T));
    return value;
  }

  std::string String() {
    const auto n = Unpack<uint16_t>();
    if (n > kMaxString) {
      Fail(EINVAL, "string length " + std::to_string(n) + " exceeds " +
                       std::to_string(kMaxString) + " at byte " + std::to_string(pos_));
    }
    const auto* raw = Take(n);
    std::string s(reinterpret_cast<const char*>(raw), n);
    if (!IsValidUtf8(s)) Fail(EINVAL, "invalid UTF-8 at byte " + std::to_string(pos_));
    return s;
  }

  // A count larger than the bytes left is malformed; fail before looping on it.
  void CheckCount() {
    if (remaining() == 0) Fail(EINVAL, "request truncated at byte " + std::to_string(pos_));
  }

  Node ReadNode(int depth) {
    if (depth >= kMaxDepth) {
      Fail(EINVAL, "expression nests deeper than " + std::to_string(kMaxDepth));
    }
    if (++nodes_ > kMaxNodes) {
      Fail(EINVAL, "expression has more than " + std::to_string(kMaxNodes) + " nodes");
    }
    Node node;
    const auto tag = Unpack<uint8_t>();
    switch (tag) {
      case static_cast<uint8_t>(NodeKind::kColumn):
        node.kind = NodeKind::kColumn;
        node.name = String();
        return node;
      case static_cast<uint8_t>(NodeKind::kLiteral):
        node.kind = NodeKind::kLiteral;
        ReadLiteral(node);
        return node;
      case static_cast<uint8_t>(NodeKind::kCall): {
        node.kind = NodeKind::kCall;
        node.name = String();
        if (std::find(kFunctions.begin(), kFunctions.end(), node.name) == kFunctions.end()) {
          Fail(EINVAL, "unknown function '" + node.name + "'");
        }
        const auto argc = Unpack<uint8_t>();
        if (argc > kMaxArgs) {
          Fail(EINVAL, node.name + " has " + std::to_string(argc) + " arguments (max " +
                           std::to_string(kMaxArgs) + ")");
        }
        for (int i = 0; i < argc; ++i) node.args.push_back(ReadNode(depth + 1));
        if (node.name == "list_element" &&
            (node.args.size() != 2 || node.args[1].kind != NodeKind::kLiteral ||
             node.args[1].literal_type != LiteralType::kInt64)) {
          Fail(EINVAL, "list_element takes a value and an int64 literal index");
        }
        return node;
      }
      default:
        Fail(EINVAL, "unknown node tag " + std::to_string(tag) + " at byte " +
                         std::to_string(pos_ - 1));
    }
  }

 private:
  void ReadLiteral(Node& node) {
    const auto code = Unpack<uint8_t>();
    if (code < static_cast<uint8_t>(LiteralType::kBool) ||
        code > static_cast<uint8_t>(LiteralType::kDouble)) {
      Fail(EINVAL, "unknown literal type code " + std::to_string(code) + " at byte " +
                       std::to_string(pos_ - 1));
    }
    node.literal_type = static_cast<LiteralType>(code);
    switch (node.literal_type) {
      case LiteralType::kBool:
        node.literal_bits = Unpack<uint8_t>() != 0;
        return;
      case LiteralType::kFloat:
        node.literal_bits = Unpack<uint32_t>();
        return;
      default:
        // Integers travel as 8 bytes; whether the value fits its type is checked when the
        // literal is evaluated, as the reference does.
        node.literal_bits = Unpack<uint64_t>();
    }
  }

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  int nodes_ = 0;  // counted over the whole request, as the Python decoder does
};

void CheckAxis(const HistAxis& axis, size_t n) {
  const auto where = "axis " + std::to_string(n) + ": ";
  if (!axis.edges.empty()) {
    if (axis.edges.size() < 2) Fail(EINVAL, where + "variable edges must be 2 or more");
    for (size_t i = 0; i < axis.edges.size(); ++i) {
      if (!std::isfinite(axis.edges[i]) || (i > 0 && axis.edges[i] <= axis.edges[i - 1])) {
        Fail(EINVAL, where + "variable edges must be finite and increase");
      }
    }
    return;
  }
  if (axis.bins < 1 || axis.bins > kMaxCells) {
    Fail(EINVAL, where + std::to_string(axis.bins) + " bins");
  }
  if (!std::isfinite(axis.low) || !std::isfinite(axis.high) || !(axis.low < axis.high)) {
    Fail(EINVAL, where + "the range must be finite with low < high");
  }
}

HistSpec ReadHistogram(Reader& r) {
  HistSpec spec;
  const auto naxes = r.Unpack<uint8_t>();
  if (naxes < 1 || naxes > kMaxAxes) {
    Fail(EINVAL, "a histogram has 1 to " + std::to_string(kMaxAxes) + " axes, not " +
                     std::to_string(naxes));
  }
  int64_t cells = 1;
  for (size_t n = 0; n < naxes; ++n) {
    HistAxis axis;
    axis.value = r.ReadNode(0);
    const auto kind = r.Unpack<uint8_t>();
    if (kind == 1) {
      axis.bins = r.Unpack<uint32_t>();
      axis.low = r.Unpack<double>();
      axis.high = r.Unpack<double>();
    } else if (kind == 2) {
      const auto nedges = r.Unpack<uint32_t>();
      if (nedges > r.remaining() / 8) Fail(EINVAL, "edge count exceeds the request's length");
      for (uint32_t i = 0; i < nedges; ++i) axis.edges.push_back(r.Unpack<double>());
    } else {
      Fail(EINVAL, "unknown axis kind " + std::to_string(kind) + " at byte " +
                       std::to_string(r.pos() - 1));
    }
    CheckAxis(axis, n);
    cells *= axis.size() + 2;  // each factor <= 2^20 + 2, three at most: no overflow
    spec.axes.push_back(std::move(axis));
  }
  if (cells > kMaxCells) {
    Fail(EINVAL, "the histogram has " + std::to_string(cells) + " cells; at most " +
                     std::to_string(kMaxCells) + " fit one result");
  }
  if (r.Unpack<uint8_t>() != 0) spec.weight = r.ReadNode(0);
  return spec;
}

}  // namespace

bool IsListReduction(const std::string& name) {
  return std::find(kReductions.begin(), kReductions.end(), name) != kReductions.end();
}

void CollectColumns(const Node& node, std::vector<std::string>& out) {
  if (node.kind == NodeKind::kColumn) {
    if (std::find(out.begin(), out.end(), node.name) == out.end()) out.push_back(node.name);
  } else if (node.kind == NodeKind::kCall) {
    for (const auto& arg : node.args) CollectColumns(arg, out);
  }
}

const DerivedColumn* FindDerived(const Request& req, const std::string& name) {
  for (const auto& column : req.derived) {
    if (column.name == name) return &column;
  }
  return nullptr;
}

Request DecodeRequest(const uint8_t* data, size_t size) {
  Reader r(data, size);
  if (size < 4 || std::memcmp(r.Take(4), "SKYQ", 4) != 0) {
    Fail(EINVAL, "not a skyhook request (bad magic)");
  }
  const auto version = r.Unpack<uint8_t>();
  const auto compress = r.Unpack<uint8_t>();
  const auto flags = r.Unpack<uint16_t>();
  if (version < 1 || version > 3) {
    Fail(EINVAL, "request version " + std::to_string(version) +
                     " is not supported (this side: 1 to 3)");
  }
  if (compress > 2 || flags != 0) {
    Fail(EINVAL, "bad compression code " + std::to_string(compress) + " or flags " +
                     std::to_string(flags));
  }
  Request req;
  req.compression = static_cast<Compression>(compress);
  const auto ncolumns = r.Unpack<uint32_t>();
  for (uint32_t i = 0; i < ncolumns; ++i) {
    r.CheckCount();
    req.columns.push_back(r.String());
  }
  if (r.Unpack<uint8_t>() != 0) req.predicate = r.ReadNode(0);
  const auto naggregates = r.Unpack<uint32_t>();
  for (uint32_t i = 0; i < naggregates; ++i) {
    r.CheckCount();
    const auto op = r.Unpack<uint8_t>();
    if (op < 1 || op > 5) {
      Fail(EINVAL, "unknown aggregate op at byte " + std::to_string(r.pos() - 1));
    }
    AggregateSpec agg;
    agg.op = static_cast<AggregateOp>(op);
    if (r.Unpack<uint8_t>() != 0) agg.expr = r.ReadNode(0);
    if (!agg.expr && agg.op != AggregateOp::kCount) {
      Fail(EINVAL, "aggregate op " + std::to_string(op) + " needs a column or expression");
    }
    req.aggregates.push_back(std::move(agg));
  }
  if (version >= 2) {
    const auto nderived = r.Unpack<uint32_t>();
    if (version == 2 && nderived == 0) {
      Fail(EINVAL, "a version 2 request derives at least one column");
    }
    for (uint32_t i = 0; i < nderived; ++i) {
      r.CheckCount();
      DerivedColumn column;
      column.name = r.String();
      column.expr = r.ReadNode(0);
      if (FindDerived(req, column.name) != nullptr) {
        Fail(EINVAL, "derived column '" + column.name + "' is defined twice");
      }
      if (std::count(req.columns.begin(), req.columns.end(), column.name) != 1) {
        Fail(EINVAL, "derived column '" + column.name + "' must be projected exactly once");
      }
      req.derived.push_back(std::move(column));
    }
  }
  if (version == 3) req.histogram = ReadHistogram(r);
  if (r.remaining() != 0) {
    Fail(EINVAL, std::to_string(r.remaining()) + " trailing bytes after the request");
  }
  return req;
}

}  // namespace skyhook
