// emsnode-mq-passwd: makes the hash of a password for the mq plugin's users, as a password file
// line or as a row of the mq_users table (database_users = true). The password comes from
// standard input, never from the command line, where other users of the host could read it.
//
//   emsnode-mq-passwd alice >> /etc/emsnode/mq-passwords
//   printf '%s\n' "$PASSWORD" | emsnode-mq-passwd --sql alice | sqlite3 /var/lib/emsnode/cluster.db
//
// Exit status: 0 printed, 1 refused input (the name or the password), 2 bad usage.
#include "access.hpp"

#include <termios.h>
#include <unistd.h>

#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

using emsnode::plugins::mq::hash_password;

constexpr std::string_view kUsage =
    "usage: emsnode-mq-passwd [--sql] NAME\n"
    "Reads a password from standard input (its first line; asked for without echo on a\n"
    "terminal) and prints the line for NAME in the mq password file, or with --sql an INSERT\n"
    "for the mq_users table of the cluster's database (for sqlite3 or psql).\n";

struct UsageError {
  std::string what;
};

struct InputError {
  std::string what;
};

struct Arguments {
  bool help = false;
  bool sql = false;
  std::string name;
};

Arguments parse_arguments(int argc, char** argv) {
  Arguments arguments;
  std::vector<std::string> names;
  bool options = true;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (options && arg == "--") {
      options = false;
    } else if (options && (arg == "-h" || arg == "--help")) {
      arguments.help = true;
    } else if (options && arg == "--sql") {
      arguments.sql = true;
    } else if (options && arg.size() > 1 && arg.front() == '-') {
      throw UsageError{"unknown option " + std::string(arg)};
    } else {
      names.emplace_back(arg);
    }
  }
  if (arguments.help) return arguments;
  if (names.size() != 1) throw UsageError{"expected one user name"};
  arguments.name = names.front();
  return arguments;
}

// Refuses a name that the password file or a client could not use as given.
void check_name(const std::string& name, bool for_file) {
  if (name.empty()) throw InputError{"the user name is empty"};
  for (char c : name) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) throw InputError{"the user name has a control character"};
  }
  if (name.find(':') != std::string::npos) {
    throw InputError{"the user name has a ':', which ends the name in a password file line"};
  }
  // The password file trims its lines and skips those starting with '#'.
  if (for_file && (name.front() == ' ' || name.back() == ' ' || name.front() == '#')) {
    throw InputError{
        "a password file cannot hold a name that starts or ends with a space or "
        "starts with '#'"};
  }
}

// Turns the terminal's echo off while it lives.
class NoEcho {
 public:
  NoEcho() {
    if (tcgetattr(STDIN_FILENO, &saved_) != 0) return;
    termios quiet = saved_;
    quiet.c_lflag &= static_cast<tcflag_t>(~ECHO);
    active_ = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
  }
  ~NoEcho() {
    if (active_) tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_);
  }
  NoEcho(const NoEcho&) = delete;
  NoEcho& operator=(const NoEcho&) = delete;

 private:
  termios saved_{};
  bool active_ = false;
};

// The first line of standard input, without its line ending; nullopt at once at its end.
std::optional<std::string> read_line() {
  std::string line;
  if (!std::getline(std::cin, line)) return std::nullopt;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

std::string prompt(const char* question) {
  std::cerr << question << std::flush;
  std::optional<std::string> answer;
  {
    const NoEcho quiet;
    answer = read_line();
  }
  std::cerr << '\n';
  return answer.value_or("");
}

std::string read_password() {
  if (isatty(STDIN_FILENO) == 0) return read_line().value_or("");
  std::string password = prompt("Password: ");
  if (!password.empty() && prompt("Again: ") != password) {
    throw InputError{"the two passwords differ"};
  }
  return password;
}

// A SQL string literal, as both SQLite and PostgreSQL read it.
std::string sql_literal(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    out.push_back(c);
    if (c == '\'') out.push_back('\'');
  }
  return out + "'";
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Arguments arguments = parse_arguments(argc, argv);
    if (arguments.help) {
      std::cout << kUsage;
      return 0;
    }
    check_name(arguments.name, !arguments.sql);
    const std::string password = read_password();
    if (password.empty()) throw InputError{"the password is empty"};
    const std::string hash = hash_password(password);
    if (arguments.sql) {
      std::cout << "INSERT INTO mq_users (username, password_hash) VALUES ("
                << sql_literal(arguments.name) << ", " << sql_literal(hash)
                << ") ON CONFLICT (username) DO UPDATE SET password_hash = "
                   "excluded.password_hash;\n";
    } else {
      std::cout << arguments.name << ':' << hash << '\n';
    }
    return std::cout.flush() ? 0 : 1;
  } catch (const UsageError& e) {
    std::cerr << "emsnode-mq-passwd: " << e.what << "\n" << kUsage;
    return 2;
  } catch (const InputError& e) {
    std::cerr << "emsnode-mq-passwd: " << e.what << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "emsnode-mq-passwd: " << e.what() << "\n";
    return 1;
  }
}
