//! Purity analysis of inline dynamic values (spec/lockfile.md §6).
//!
//! A pure function can be stored in the lock as source text and evaluated by the orchestrator
//! in an empty sandbox, so it may only use its parameters, its own locals and a short list of
//! side-effect-free globals.

use oxc_allocator::Allocator;
use oxc_ast::AstKind;
use oxc_ast::ast::{Expression, Statement, UnaryOperator, VariableDeclarationKind};
use oxc_parser::Parser;
use oxc_semantic::SemanticBuilder;
use oxc_span::SourceType;

const ALLOWED_GLOBALS: &[&str] = &[
    "undefined",
    "null",
    "true",
    "false",
    "NaN",
    "Infinity",
    "String",
    "Number",
    "Boolean",
    "Array",
    "Object",
    "JSON",
    "Math",
    "parseInt",
    "parseFloat",
    "isNaN",
    "isFinite",
    "encodeURI",
    "decodeURI",
    "encodeURIComponent",
    "decodeURIComponent",
];

/// `Ok(())` when `function_source` (the text of `Function.prototype.toString()`) is pure,
/// otherwise the reason it is not, worded for warning W001.
pub fn check(function_source: &str) -> Result<(), String> {
    let allocator = Allocator::default();
    let wrapped = format!("({function_source});");
    let parsed = Parser::new(&allocator, &wrapped, SourceType::mjs()).parse();
    if parsed.panicked || parsed.diagnostics.has_errors() {
        return Err("not a function expression".to_string());
    }
    let function = match parsed.program.body.first() {
        Some(Statement::ExpressionStatement(statement)) => match &statement.expression {
            Expression::ParenthesizedExpression(inner) => &inner.expression,
            other => other,
        },
        _ => return Err("not a function expression".to_string()),
    };
    match function {
        Expression::ArrowFunctionExpression(arrow) if arrow.r#async => {
            return Err("async functions cannot be inlined".to_string());
        }
        Expression::FunctionExpression(f) if f.r#async => {
            return Err("async functions cannot be inlined".to_string());
        }
        Expression::FunctionExpression(f) if f.generator => {
            return Err("generator functions cannot be inlined".to_string());
        }
        Expression::ArrowFunctionExpression(_) | Expression::FunctionExpression(_) => {}
        _ => return Err("not an arrow function or function expression".to_string()),
    }
    let built = SemanticBuilder::new()
        .with_build_nodes(true)
        .build(&parsed.program);
    for node in built.semantic.nodes().iter() {
        let forbidden = match node.kind() {
            AstKind::ThisExpression(_) => Some("uses this"),
            AstKind::NewExpression(_) => Some("contains new"),
            AstKind::Class(_) => Some("contains a class"),
            AstKind::ThrowStatement(_) => Some("contains throw"),
            AstKind::TryStatement(_) => Some("contains try"),
            AstKind::UnaryExpression(u) if u.operator == UnaryOperator::Delete => {
                Some("contains delete")
            }
            AstKind::VariableDeclaration(d) if d.kind == VariableDeclarationKind::Var => {
                Some("contains var")
            }
            AstKind::YieldExpression(_) => Some("contains yield"),
            AstKind::AwaitExpression(_) => Some("contains await"),
            AstKind::AssignmentExpression(_) => Some("contains assignment"),
            AstKind::UpdateExpression(_) => Some("contains increment or decrement"),
            _ => None,
        };
        if let Some(reason) = forbidden {
            return Err(reason.to_string());
        }
    }
    let scoping = built.semantic.scoping();
    let mut unknown: Vec<&str> = scoping
        .root_unresolved_references()
        .keys()
        .map(|name| name.as_str())
        .filter(|name| !ALLOWED_GLOBALS.contains(name))
        .collect();
    unknown.sort_unstable();
    match unknown.first() {
        Some(name) => Err(format!("references unknown identifier '{name}'")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn pure_arrow_functions_pass() {
        assert_eq!(check("(e) => e.branch === 'main' ? 'prod' : 'dev'"), Ok(()));
        assert_eq!(
            check("({ branch }) => { const x = String(branch); return x; }"),
            Ok(())
        );
        assert_eq!(check("function (e) { return JSON.stringify(e); }"), Ok(()));
    }

    #[test]
    fn impure_functions_name_the_reason() {
        assert_eq!(
            check("() => process.env.X"),
            Err("references unknown identifier 'process'".into())
        );
        assert_eq!(
            check("async () => 'x'"),
            Err("async functions cannot be inlined".into())
        );
        assert_eq!(
            check("(e) => { let a; a = 1; return a; }"),
            Err("contains assignment".into())
        );
        assert_eq!(
            check("() => new Date().toString()"),
            Err("contains new".into())
        );
        assert_eq!(
            check("env(e) { return {}; }"),
            Err("not a function expression".into())
        );
        assert_eq!(
            check("(e) => { let i = 0; i++; return i; }"),
            Err("contains increment or decrement".into())
        );
    }
}
