package sqlstmt

import (
	"slices"
	"testing"
)

func TestSQLStatementsReadsAsADatabaseWould(t *testing.T) {
	for _, c := range []struct {
		sql  string
		want []string
	}{
		{`DROP TABLE users;`, []string{"drop table users"}},
		{`DROP/**/TABLE users`, []string{"drop table users"}},
		{"DeLeTe\n\tFROM  t -- all of it\nWHERE 2=2", []string{"delete from t where 2=2"}},
		{`SELECT 1; DROP TABLE t`, []string{"select 1", "drop table t"}},
		{`SELECT 'a;b', "Col" FROM t WHERE x = 'it''s'`, []string{`select ?, "Col" from t where x = ?`, `select ?, ? from t where x = ?`}},
		{`DELETE FROM t WHERE name = 'x'; -- '`, []string{"delete from t where name = ?"}},
		// MySQL reads # as a comment and \ as an escape; PostgreSQL does not.
		{"DROP#x\nTABLE t", []string{"drop#x table t", "drop table t"}},
		{`SELECT 'a\' , ' ; DROP TABLE t; -- '`, []string{"select ? , ?", "select ?", "drop table t"}},
		{`SELECT 1 # 2; DROP TABLE t`, []string{"select 1 # 2", "drop table t", "select 1"}},
		// MySQL runs the content of /*! ... */.
		{`/*!50000DROP*/ TABLE t`, []string{"table t", "drop table t"}},
		// SQL inside strings that SQL runs.
		{`EXECUTE 'DROP TABLE t'`, []string{"execute ?", "drop table t"}},
		{`DO $$ BEGIN EXECUTE 'TRUNCATE t'; END $$`, []string{"do ?", "begin execute ?", "end", "truncate t"}},
		{`INSERT INTO notes VALUES ('drop table x')`, []string{"insert into notes values (?)"}},
		{`SELECT $1 FROM t`, []string{"select $1 from t"}},
		{`unterminated 'literal`, []string{"unterminated ?"}},
		{``, nil},
	} {
		got := Statements(c.sql)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s\n got  %q\n want %q", c.sql, got, c.want)
		}
	}
}

func FuzzSQLStatements(f *testing.F) {
	for _, s := range []string{`DROP/**/TABLE t`, `'a\'b'`, `$x$ $$ $x$`, `/*! /* */`, "#\n--", `"a""b"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_ = Statements(s)
	})
}

func TestSQLRunFromStringsIsRead(t *testing.T) {
	for _, c := range []struct {
		sql  string
		want string
	}{
		{`EXECUTE format('DROP TABLE %I', t)`, "drop table %i"},
		{`EXEC sp_executesql N'TRUNCATE TABLE t'`, "truncate table t"},
		{`PREPARE s FROM 'DELETE FROM t'; EXECUTE s`, "delete from t"},
		{`EXEC('DROP DATABASE d')`, "drop database d"},
	} {
		if got := Statements(c.sql); !slices.Contains(got, c.want) {
			t.Errorf("%s: %q lacks %q", c.sql, got, c.want)
		}
	}
}

func TestSQLInjectedKeepsWhatFollowsTheValue(t *testing.T) {
	for _, c := range []struct {
		value string
		want  string
	}{
		{`product'; DROP TABLE products; --`, "?; drop table products"},
		{`admin'/**/OR/**/'x'='x`, "? or ?=?"},
		{`x' UNION/**/SELECT password FROM users --`, "? union select password from users"},
		{`5; UPDATE orders SET status = 'shipped'`, "5; update orders set status = ?"},
		{`1 OR 1=1`, "1 or 1=1"},
	} {
		if got := Injected(c.value); !slices.Contains(got, c.want) {
			t.Errorf("%s: %q lacks %q", c.value, got, c.want)
		}
	}
}
