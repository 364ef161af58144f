"""The analysts' Cypher guard: a statement runs only if an allow-list over a real parse proves it reads.

`check_read_only` first splits the text into tokens the way Ladybug and Neo4j lex it: keywords are
case-insensitive, backtick-quoted names are unquoted (and so are never keywords), comments are
dropped, and a number ends where Ladybug's lexer ends it (`1LOAD` is the number 1, then LOAD).
Whatever the two databases might read differently is refused rather than guessed: a character
outside ASCII in the code (unicode dashes, spaces, lookalike letters), a `\\u` escape anywhere
(Neo4j decodes it before lexing, even in a comment), a doubled quote in a string, a block comment
ending in `**/`, a carriage return not followed by a line feed.

A recursive-descent parser then accepts only the read clauses (MATCH, OPTIONAL MATCH, UNWIND, WITH,
RETURN, UNION, CALL of a schema procedure), the expression forms listed in `_Parser`, the functions
in `ALLOWED_FUNCTIONS` and the procedures in `READ_PROCEDURES`. Anything else is refused with a
one-line `ReadOnlyError` naming the token. Names in property or label position may be anything;
a bare keyword used as a variable is refused (quote it with backticks).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import NoReturn

from kb.store import ReadOnlyError

# Schema-inspection procedures (lower case, namespace parts joined by '.'): nothing that reads
# files, changes settings or writes. Ladybug's first, then Neo4j's.
READ_PROCEDURES = frozenset(
    {
        "show_tables", "table_info", "show_connection", "show_indexes",
        "db.labels", "db.relationshiptypes", "db.propertykeys", "db.schema.visualization",
        "db.schema.nodetypeproperties", "db.schema.reltypeproperties",
    }
)  # fmt: skip

# Pure functions (lower case) of Ladybug or Neo4j: aggregates, graph introspection, strings,
# numbers, lists and dates. No table function, sequence, setting, random seed or file access.
ALLOWED_FUNCTIONS = frozenset(
    {
        "count", "sum", "avg", "min", "max", "collect", "percentilecont", "percentiledisc",
        "labels", "label", "type", "id", "elementid", "keys", "properties", "startnode", "endnode",
        "start_node", "end_node", "nodes", "relationships", "rels", "length", "size",
        "tolower", "toupper", "lower", "upper", "trim", "ltrim", "rtrim", "substring", "left", "right",
        "replace", "split", "reverse", "tostring", "to_string", "concat", "lpad", "rpad",
        "abs", "ceil", "floor", "round", "sign", "sqrt", "log", "log10", "ln", "pi", "sin", "cos", "tan",
        "tointeger", "tofloat", "toboolean", "to_int64", "to_double", "to_float", "to_bool",
        "range", "head", "last", "tail", "coalesce", "list_contains", "list_sort", "list_distinct", "list_sum",
        "date", "datetime", "timestamp", "duration", "current_date", "current_timestamp",
    }
)  # fmt: skip

READ_CLAUSES = "MATCH, OPTIONAL MATCH, UNWIND, WITH, RETURN, UNION and CALL of a schema procedure"

# Every keyword of either dialect's grammar that a clause or an expression form starts with or
# contains: such a word is never taken as a bare variable name, so it cannot mean two things.
KEYWORDS = frozenset(
    """
    ADD ALL ALTER ANALYZE AND ANY AS ASC ASCENDING ATTACH BEGIN BY CALL CASE CHECKPOINT COMMENT COMMIT
    CONSTRAINT CONTAINS COPY CREATE CSV DATABASE DBTYPE DELETE DENY DESC DESCENDING DETACH DISTINCT DROP
    ELSE END ENDS EXISTS EXPLAIN EXPORT EXTENSION FALSE FINISH FOR FORCE FOREACH FROM GRANT GRAPH HEADERS
    IMPORT IN INDEX INSTALL IS LIMIT LOAD MACRO MATCH MERGE NONE NOT NULL ON OPTIONAL OR ORDER PROFILE
    REMOVE RENAME RETURN REVOKE ROLLBACK SET SHOW SINGLE SKIP STARTS TABLE TERMINATE THEN TO TRANSACTION
    TRUE UNINSTALL UNION UNWIND UPDATE USE WHEN WHERE WITH XOR YIELD
    """.split()
)

_OPERATORS = (  # two-character operators first: the longest match wins, as in the databases' lexers
    "..", "<>", "<=", ">=", "=~",
    "(", ")", "[", "]", "{", "}", ",", ".", ":", ";", "|", "*", "+", "-", "/", "%", "^", "=", "<", ">",
)  # fmt: skip
_STRING_ESCAPES = frozenset("\\'\"bBfFnNrRtT")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNICODE_ESCAPE = re.compile(r"\\[uU]")
_EXPONENT_REAL = re.compile(r"(?:[0-9]+\.[0-9]+|\.[0-9]+|[0-9]+)[eE]-?[0-9]+")
_REGULAR_REAL = re.compile(r"[0-9]*\.[0-9]+")
_INTEGER = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True)
class Token:
    """One lexical unit: kind is word, number, string, param, op or end; words keep their unquoted name."""

    kind: str
    text: str
    offset: int
    quoted: bool = False

    @property
    def keyword(self) -> str | None:
        """The upper-cased word if it can be a keyword (an unquoted word), else None."""
        return self.text.upper() if self.kind == "word" and not self.quoted else None


def check_read_only(text: str) -> None:
    """Raise ReadOnlyError naming the first token that is not a provable read; return silently otherwise."""
    _Parser(text, tokenize(text)).statement()


def _refuse(text: str, offset: int, message: str) -> NoReturn:
    """Raise ReadOnlyError with `message` and where in `text` it applies (line and column)."""
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    raise ReadOnlyError(f"{message} (line {line}, column {column})")


def _describe(char: str) -> str:
    """A character as the user can find it: quoted, with its code point and name."""
    return f"{char!r} (U+{ord(char):04X} {unicodedata.name(char, 'control character')})"


def _check_text(text: str, start: int, end: int, what: str) -> None:
    """Refuse control characters (tab, line feed and CR+LF excepted) in a comment, string or quoted name."""
    for offset in range(start, end):
        char = text[offset]
        if char in "\t\n" or (char == "\r" and text.startswith("\n", offset + 1)):
            continue
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            _refuse(text, offset, f"the console refuses the control character {_describe(char)} in a {what}")


def tokenize(text: str) -> list[Token]:
    """Split `text` as Ladybug and Neo4j do; refuse whatever they could read differently."""
    escape = _UNICODE_ESCAPE.search(text)
    if escape:
        # Neo4j replaces \uXXXX before it lexes, anywhere: in a comment or a `name` it could end either.
        _refuse(text, escape.start(), "a \\u escape is not accepted anywhere in the query: type the character itself")
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in " \t\n" or (char == "\r" and text.startswith("\n", i + 1)):
            i += 1
        elif char == "\r":
            _refuse(text, i, "the console refuses a carriage return that is not followed by a line feed")
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            _check_text(text, i, end, "comment")
            i = end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                _refuse(text, i, "the block comment is not closed with */")
            if text[end - 1] == "*" and end - 1 >= i + 2:
                _refuse(
                    text, end - 1, "a block comment ending in '**/' is read differently by the databases: put a space before */"
                )
            _check_text(text, i + 2, end, "comment")
            i = end + 2
        elif char in "'\"":
            i = _string(text, i, tokens)
        elif char == "`":
            i = _quoted_name(text, i, tokens)
        elif char == "$":
            i = _parameter(text, i, tokens)
        elif _NAME.match(text, i):
            name = _NAME.match(text, i).group()  # type: ignore[union-attr]
            tokens.append(Token("word", name, i))
            i = _after_name(text, i + len(name))
        elif char.isascii() and (
            char.isdigit() or (char == "." and text[i + 1 : i + 2].isdigit() and text[i + 1 : i + 2].isascii())
        ):
            number = max((m.group() for p in (_EXPONENT_REAL, _REGULAR_REAL, _INTEGER) if (m := p.match(text, i))), key=len)
            tokens.append(Token("number", number, i))
            i += len(number)
        else:
            operator = next((op for op in _OPERATORS if text.startswith(op, i)), None)
            if operator is None:
                _refuse(text, i, f"the console does not accept the character {_describe(char)} outside strings and `names`")
            tokens.append(Token("op", operator, i))
            i += len(operator)
    tokens.append(Token("end", "", n))
    return tokens


def _string(text: str, start: int, tokens: list[Token]) -> int:
    """Read a quoted string starting at `start`; return the offset after it."""
    quote, i, value = text[start], start + 1, []
    while True:
        if i >= len(text):
            _refuse(text, start, "the string is not closed")
        char = text[i]
        if char == quote:
            break
        if char == "\\":
            escape = text[i + 1 : i + 2]
            if escape not in _STRING_ESCAPES or not escape:
                _refuse(
                    text, i, f"the console accepts only the escapes \\\\ \\' \\\" \\b \\f \\n \\r \\t in strings, not \\{escape}"
                )
            value.append(text[i : i + 2])
            i += 2
            continue
        value.append(char)
        i += 1
    _check_text(text, start + 1, i, "string")
    if text.startswith(quote, i + 1):
        _refuse(text, i, f"a doubled quote {quote}{quote} is read differently by the databases: write \\{quote} inside a string")
    tokens.append(Token("string", "".join(value), start))
    return i + 1


def _quoted_name(text: str, start: int, tokens: list[Token]) -> int:
    """Read a backtick-quoted name (`` `` `` inside it is one backtick); return the offset after it."""
    i, parts = start, []
    while text.startswith("`", i):
        end = text.find("`", i + 1)
        if end < 0:
            _refuse(text, i, "the `name` is not closed with a backtick")
        parts.append(text[i + 1 : end])
        i = end + 1
    name = "`".join(parts)
    if not name:
        _refuse(text, start, "an empty `` name is not accepted")
    _check_text(text, start, i, "quoted name")
    tokens.append(Token("word", name, start, quoted=True))
    return _after_name(text, i)


def _parameter(text: str, start: int, tokens: list[Token]) -> int:
    """Read `$name` or `$0`; return the offset after it."""
    match = _NAME.match(text, start + 1) or _INTEGER.match(text, start + 1)
    if match is None:
        _refuse(text, start, "a parameter is $ followed by a name or a number")
    tokens.append(Token("param", match.group(), start))
    return _after_name(text, match.end())


def _after_name(text: str, offset: int) -> int:
    """Refuse `$` glued after a name: Ladybug reads it as part of the name, Neo4j as a parameter."""
    if text.startswith("$", offset):
        _refuse(text, offset, "write a space before $: a $ glued to a name is read differently by the databases")
    return offset


class _Parser:
    """Recursive descent over the tokens, accepting only the read subset of Cypher described below."""

    def __init__(self, text: str, tokens: list[Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.i = 0

    # --- token helpers ---
    def peek(self, ahead: int = 0) -> Token:
        """The token `ahead` places on (the end token past the end)."""
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        """Consume and return the next token."""
        token = self.peek()
        self.i += 1
        return token

    def at(self, *words: str, ahead: int = 0) -> bool:
        """Whether the token `ahead` is one of these keywords or operators."""
        token = self.peek(ahead)
        return (token.keyword in words) if token.kind == "word" else (token.kind == "op" and token.text in words)

    def accept(self, *words: str) -> Token | None:
        """Consume the next token if it is one of `words`."""
        return self.next() if self.at(*words) else None

    def expect(self, *words: str) -> Token:
        """Consume the next token, which must be one of `words`."""
        if not self.at(*words):
            self.unexpected(" or ".join(words))
        return self.next()

    def fail(self, message: str, token: Token | None = None) -> NoReturn:
        """Refuse the query at `token` (default: the next one)."""
        _refuse(self.text, (token or self.peek()).offset, message)

    def unexpected(self, wanted: str) -> NoReturn:
        """Refuse the query: the next token is not what the grammar allows here."""
        token = self.peek()
        found = "the end of the query" if token.kind == "end" else repr(token.text)
        self.fail(f"the console cannot check this query: expected {wanted}, found {found}")

    def name(self, what: str) -> Token:
        """A variable or alias: any word but a bare keyword."""
        token = self.peek()
        if token.kind != "word":
            self.unexpected(what)
        if token.keyword in KEYWORDS:
            self.fail(f"{token.text} is a Cypher keyword: write `{token.text}` (in backticks) to use it as a {what} name")
        return self.next()

    def symbol(self, what: str) -> Token:
        """A label, relationship type, property key or map key: any word, keyword or not."""
        if self.peek().kind != "word":
            self.unexpected(what)
        return self.next()

    # --- statement and clauses ---
    def statement(self) -> None:
        """single_query (UNION [ALL] single_query)* [;]"""
        if self.peek().kind == "end":
            raise ReadOnlyError("the query is empty")
        self.single_query()
        while self.accept("UNION"):
            self.accept("ALL")
            self.single_query()
        semicolon = self.accept(";")
        if self.peek().kind != "end":
            if semicolon:
                self.fail("one statement at a time: the query holds several (separated by ';')")
            self.clause_refused()

    def single_query(self) -> None:
        """Reading clauses and WITH, ending in RETURN; or one standalone CALL of a schema procedure."""
        if self.at("CALL"):
            self.call()
            if self.at(";") or self.peek().kind == "end":
                return
        while True:
            if self.at("MATCH", "OPTIONAL"):
                self.match()
            elif self.at("UNWIND"):
                self.next()
                self.expression()
                self.expect("AS")
                self.name("variable")
            elif self.at("CALL"):
                self.call()
            elif self.accept("WITH"):
                self.projection()
                if self.accept("WHERE"):
                    self.expression()
            elif self.accept("RETURN"):
                self.projection()
                return
            else:
                self.clause_refused()

    def clause_refused(self) -> NoReturn:
        """Refuse the query at a token that does not start an allowed clause, naming it."""
        token = self.peek()
        if token.kind == "end":
            self.fail("the query must end with RETURN")
        if token.keyword is not None:
            self.fail(f"analysts' Cypher is read-only: {token.keyword} is not an allowed clause here (allowed: {READ_CLAUSES})")
        self.unexpected("a clause")

    def match(self) -> None:
        """[OPTIONAL] MATCH pattern [WHERE expression]"""
        if self.accept("OPTIONAL"):
            self.expect("MATCH")
        else:
            self.expect("MATCH")
        self.pattern()
        if self.accept("WHERE"):
            self.expression()

    def call(self) -> None:
        """CALL procedure(args) [YIELD items] [WHERE expression], the procedure on the read-only list."""
        call = self.expect("CALL")
        if self.at("{", "("):
            self.fail("analysts' Cypher is read-only: CALL subqueries are not accepted", call)
        first = self.peek()
        parts = [self.symbol("a procedure name").text]
        while self.accept("."):
            parts.append(self.symbol("a procedure name").text)
        procedure = ".".join(parts)
        if procedure.lower() not in READ_PROCEDURES:
            self.fail(f"analysts' Cypher is read-only: procedure {procedure} is not on the list of read-only procedures", first)
        self.arguments()
        if self.accept("YIELD") and not self.accept("*"):
            self.yield_item()
            while self.accept(","):
                self.yield_item()
        if self.accept("WHERE"):
            self.expression()

    def yield_item(self) -> None:
        """column [AS variable]"""
        self.symbol("a result column")
        if self.accept("AS"):
            self.name("variable")

    def projection(self) -> None:
        """[DISTINCT] items [ORDER BY sort items] [SKIP expr] [LIMIT expr]"""
        self.accept("DISTINCT")
        if self.accept("*"):
            items = bool(self.accept(","))
        else:
            items = True
        while items:
            self.expression()
            if self.accept("AS"):
                self.name("column")
            items = bool(self.accept(","))
        if self.accept("ORDER"):
            self.expect("BY")
            while True:
                self.expression()
                self.accept("ASC", "ASCENDING", "DESC", "DESCENDING")
                if not self.accept(","):
                    break
        if self.accept("SKIP"):
            self.expression()
        if self.accept("LIMIT"):
            self.expression()

    # --- patterns ---
    def pattern(self) -> None:
        """part (, part)*, a part being [variable =] element"""
        while True:
            if self.peek().kind == "word" and self.at("=", ahead=1):
                self.name("path")
                self.next()
            self.pattern_element()
            if not self.accept(","):
                return

    def pattern_element(self) -> None:
        """node (relationship node)*, or the same in parentheses."""
        if self.at("(") and self.at("(", ahead=1):
            self.next()
            self.pattern_element()
            self.expect(")")
            return
        self.node()
        while self.at("-", "<"):
            self.relationship()
            self.node()

    def node(self) -> None:
        """( [variable] [:Label(:Label | |Label)*] [{properties} | $param] )"""
        self.expect("(")
        if self.peek().kind == "word":
            self.name("variable")
        if self.accept(":"):
            self.symbol("a label")
            while self.accept(":", "|"):
                self.accept(":")
                self.symbol("a label")
        self.properties()
        self.expect(")")

    def properties(self) -> None:
        """An optional property map or parameter in a node or relationship pattern."""
        if self.at("{"):
            self.map_literal()
        elif self.peek().kind == "param":
            self.next()

    def relationship(self) -> None:
        """<-[detail]- or -[detail]-> or -[detail]-, the detail optional."""
        left = bool(self.accept("<"))
        self.expect("-")
        if self.accept("["):
            if self.peek().kind == "word":
                self.name("variable")
            if self.accept(":"):
                self.symbol("a relationship type")
                while self.accept("|"):
                    self.accept(":")
                    self.symbol("a relationship type")
            if self.accept("*"):
                self.integer_bound()
                if self.accept(".."):
                    self.integer_bound()
            self.properties()
            self.expect("]")
        self.expect("-")
        if self.accept(">") and left:
            self.fail("a relationship has one direction: <-[]- or -[]->, not both")

    def integer_bound(self) -> None:
        """An optional whole number bounding a variable-length relationship."""
        token = self.peek()
        if token.kind == "number":
            if not _INTEGER.fullmatch(token.text):
                self.fail(f"a path length is a whole number, not {token.text}")
            self.next()

    # --- expressions (a superset of both dialects' precedence; the database re-parses) ---
    def expression(self) -> None:
        """Boolean operators over comparisons."""
        while True:
            while self.accept("NOT"):
                pass
            self.comparison()
            if not self.accept("AND", "OR", "XOR"):
                return

    def comparison(self) -> None:
        """Arithmetic operands joined by comparison operators."""
        self.arithmetic()
        while self.accept("=", "<>", "<", "<=", ">", ">=", "=~"):
            self.arithmetic()

    def arithmetic(self) -> None:
        """Operands, each with optional unary minus, joined by arithmetic operators."""
        while True:
            while self.accept("-"):
                pass
            self.postfix()
            if not self.accept("+", "-", "*", "/", "%", "^"):
                return

    def postfix(self) -> None:
        """An atom with property lookups, indexes, slices and the string, list and null predicates."""
        self.atom()
        while True:
            if self.accept("."):
                self.symbol("a property name")
            elif self.accept("["):
                if not self.at(".."):
                    self.expression()
                if self.accept("..") and not self.at("]"):
                    self.expression()
                self.expect("]")
            elif self.accept("IS"):
                self.accept("NOT")
                self.expect("NULL")
            elif self.accept("IN", "CONTAINS"):
                self.arithmetic_operand()
            elif self.accept("STARTS", "ENDS"):
                self.expect("WITH")
                self.arithmetic_operand()
            else:
                return

    def arithmetic_operand(self) -> None:
        """The right side of IN, CONTAINS, STARTS WITH, ENDS WITH: an operand with optional minus."""
        while self.accept("-"):
            pass
        self.postfix()

    def atom(self) -> None:
        """A literal, parameter, list, map, parenthesised expression, CASE, subquery, quantifier, call or variable."""
        token = self.peek()
        if token.kind in ("number", "string", "param"):
            self.next()
        elif self.at("["):
            self.sequence("[", "]")
        elif self.at("{"):
            self.map_literal()
        elif self.accept("("):
            self.expression()
            self.expect(")")
        elif token.kind != "word":
            self.unexpected("an expression")
        elif self.accept("TRUE", "FALSE", "NULL"):
            pass
        elif self.at("CASE"):
            self.case()
        elif self.at("EXISTS", "COUNT") and self.at("{", ahead=1):
            self.next()
            self.next()
            self.match()
            self.expect("}")
        elif self.at("ALL", "ANY", "NONE", "SINGLE") and self.at("(", ahead=1):
            self.next()
            self.next()
            self.name("variable")
            self.expect("IN")
            self.expression()
            self.expect("WHERE")
            self.expression()
            self.expect(")")
        elif self._function_ahead():
            self.function()
        else:
            self.name("variable")

    def _function_ahead(self) -> bool:
        """Whether a (possibly dotted) name followed by '(' starts here."""
        ahead = 0
        while self.peek(ahead).kind == "word" and self.at(".", ahead=ahead + 1):
            ahead += 2
        return self.peek(ahead).kind == "word" and self.at("(", ahead=ahead + 1)

    def function(self) -> None:
        """name(args) with the name on the list of allowed functions; count(*) too."""
        first = self.peek()
        parts = [self.next().text]
        while self.accept("."):
            parts.append(self.next().text)
        function = ".".join(parts)
        if function.lower() not in ALLOWED_FUNCTIONS:
            self.fail(f"analysts' Cypher is read-only: function {function} is not on the list of allowed functions", first)
        if function.lower() == "count" and self.at("*", ahead=1):
            self.next()
            self.next()
            self.expect(")")
            return
        self.arguments(distinct=True)

    def arguments(self, distinct: bool = False) -> None:
        """( [DISTINCT] [expression (, expression)*] )"""
        self.expect("(")
        if distinct:
            self.accept("DISTINCT")
        if not self.at(")"):
            self.expression()
            while self.accept(","):
                self.expression()
        self.expect(")")

    def sequence(self, opening: str, closing: str) -> None:
        """A list literal: [ [expression (, expression)*] ]"""
        self.expect(opening)
        if not self.at(closing):
            self.expression()
            while self.accept(","):
                self.expression()
        self.expect(closing)

    def map_literal(self) -> None:
        """{ [key: expression (, key: expression)*] }"""
        self.expect("{")
        if not self.at("}"):
            while True:
                self.symbol("a map key")
                self.expect(":")
                self.expression()
                if not self.accept(","):
                    break
        self.expect("}")

    def case(self) -> None:
        """CASE [expression] (WHEN expression THEN expression)+ [ELSE expression] END"""
        self.expect("CASE")
        if not self.at("WHEN"):
            self.expression()
        self.expect("WHEN")
        while True:
            self.expression()
            self.expect("THEN")
            self.expression()
            if not self.accept("WHEN"):
                break
        if self.accept("ELSE"):
            self.expression()
        self.expect("END")
