// A google.api.http path template, as a service's HTTP annotations write them (the grammar of
// google/api/http.proto's HttpRule):
//   Template = "/" Segments [ Verb ] ;       Segment  = "*" | "**" | LITERAL | Variable ;
//   Variable = "{" FieldPath [ "=" Segments ] "}" ;   FieldPath = IDENT { "." IDENT } ;
//   Verb     = ":" LITERAL ;
// "*" takes one segment, "**" any number (zero too; only last, before the verb), a variable
// without "=" one segment; "{name=shelves/*/books/*}" binds the segments it spans, joined.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::filters::transcode {

// A request field bound from the request's path or query: its dotted field path and its value,
// percent-decoded.
struct FieldValue {
  std::string field;
  std::string value;
};

class PathTemplate {
 public:
  // Null, with *why, when `text` is not a template.
  static std::optional<PathTemplate> parse(std::string_view text, std::string* why);

  // Whether `path` (without its query) matches; the variables' values are appended to *out: a
  // one-segment variable's fully decoded, a multi-segment one's with "%2F" kept (a '/' inside a
  // segment is not a separator: RFC 3986 2.2).
  bool match(std::string_view path, std::vector<FieldValue>* out) const;

  // Literal segments (and the verb): a template with more of them is the more specific.
  size_t literals() const { return literals_; }
  const std::string& text() const { return text_; }

 private:
  enum class Kind { kLiteral, kStar, kStars };
  struct Segment {
    Kind kind;
    std::string literal;
  };
  struct Variable {
    std::string field;
    size_t begin, end;  // the segments it spans, [begin, end)
  };

  std::string text_;
  std::vector<Segment> segments_;
  std::vector<Variable> variables_;
  std::string verb_;
  size_t literals_ = 0;
};

}  // namespace gatehouse::filters::transcode
