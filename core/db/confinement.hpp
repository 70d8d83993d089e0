// What a plugin's SQL may do, judged from its words: the checks both backends run before a
// confined statement (Database::confined_query, Transaction::confined_exec), and the lexer they
// share. SQLite also enforces the same rule with an authorizer as it compiles the statement
// (sqlite_database.cpp), which sees every table a statement reads or writes; on PostgreSQL these
// words, a READ ONLY transaction for reads, and the fenced transaction for writes are the guard.
//
// The rule: a plugin runs SELECT, INSERT, UPDATE and DELETE (and WITH, VALUES, REPLACE), and in
// migrations CREATE/ALTER/DROP of tables, indexes, views and triggers, on objects named
// `<prefix>...` that are not the core's own. Anything that changes the shared connection (PRAGMA,
// ATTACH, SET, RESET, set_config(), ...), ends or opens a transaction, creates a temporary object
// (which would shadow the core's tables on that connection) or writes any other table is refused.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "db/database.hpp"

namespace emsnode::db {

// The words, quoted identifiers (unquoted) and punctuation of a SQL statement, without its
// comments and string literals.
std::vector<std::string> sql_tokens(std::string_view sql);

// The tables, indexes, views and triggers that a CREATE, ALTER or DROP statement names (lower
// case, without a schema qualifier; for an index or a trigger also the table it is on); empty for
// any other statement.
std::vector<std::string> ddl_names(std::string_view sql);

// True for the tables and indexes of the core's schema (lease, nodes, settings, schema_versions,
// the store's), whatever prefix a plugin owns.
bool is_core_object(std::string_view name);

// True when `name` (any case) belongs to the confinement: it starts with its prefix and is not
// the core's.
bool owns(const Confinement& confinement, std::string_view name);

// Why `sql` may not run under `confinement`, or nullopt when its words allow it.
std::optional<std::string> confinement_refusal(const Confinement& confinement,
                                               std::string_view sql);

}  // namespace emsnode::db
