#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>

#include "admin/json.hpp"

namespace emsnode::admin {

TEST_CASE("a JSON string escapes quotes, backslashes and every control character") {
  CHECK(json_string("say \"hi\" \\ bye") == R"("say \"hi\" \\ bye")");
  CHECK(json_string("\b\f\n\r\t") == R"("\b\f\n\r\t")");
  CHECK(json_string(std::string("\x01\x1f\x7f", 3)) == R"("\u0001\u001f\u007f")");
  CHECK(json_string(std::string("a\0b", 3)) == R"("a\u0000b")");
  CHECK(json_string("</script>") == R"("</script>")");
}

TEST_CASE("well-formed UTF-8 passes through a JSON string unchanged") {
  const std::string text = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf";
  CHECK(json_string(text) == "\"" + text + "\"");
}

TEST_CASE("each ill-formed UTF-8 sequence in a JSON string becomes one U+FFFD") {
  CHECK(json_string("a\xff"
                    "b") == R"("a\ufffdb")");
  CHECK(json_string("\xe2\x82") == R"("\ufffd")");                  // truncated at the end
  CHECK(json_string("\xe2\x82x") == R"("\ufffdx")");                // truncated before ASCII
  CHECK(json_string("\xc0\xaf") == R"("\ufffd\ufffd")");            // overlong '/'
  CHECK(json_string("\xed\xa0\x80") == R"("\ufffd\ufffd\ufffd")");  // a surrogate
  CHECK(json_string("\xf4\x90\x80\x80") == R"("\ufffd\ufffd\ufffd\ufffd")");  // above U+10FFFF
  CHECK(json_string("\x80") == R"("\ufffd")");  // a lone continuation byte
}

TEST_CASE("the JSON writer separates members and elements and nests containers") {
  JsonWriter json;
  json.begin_object();
  json.key("name").string("a");
  json.key("list").begin_array().number(std::int64_t{-1}).boolean(true).null();
  json.begin_object().end_object().begin_array().end_array().end_array();
  json.key("max").number(std::numeric_limits<std::uint64_t>::max());
  json.key("q\"uote").boolean(false);
  json.end_object();
  CHECK(json.take() ==
        R"({"name":"a","list":[-1,true,null,{},[]],"max":18446744073709551615,"q\"uote":false})");
}

}  // namespace emsnode::admin
