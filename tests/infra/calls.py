"""The AWS calls code makes, read from its source, and whether a role's policies allow them.

A call is `<client>.<method>(...)` where the client is
- made on the spot: `boto3.client("sns").publish(...)`, `session.client("s3").get_object(...)`;
- a name bound to such a client in the same function: `runtime = ....client("sagemaker-runtime")`;
- or a name the project gives its clients (CLIENT_NAMES): a parameter `sagemaker`, `self._sagemaker`, `place.s3`.
`get_paginator("list_objects_v2")` is the call it pages. Each method becomes the API operation botocore's service
model names, then the IAM action: the service's signing name and the operation, except where an action is
named otherwise (S3_ACTIONS, TRANSFERS, NO_PERMISSION). A method the service does not have is an error that
names the file and line, so a name that is not the client it seems cannot pass unnoticed.

`Program` follows the code from an entry point (a Lambda's handler, a CLI command) through the functions it
references in the files it is given, so that a helper in another module counts where it is used and not
elsewhere. References are resolved by name: a module's functions, imported names and modules, methods of
`self`, and any method of that name in the given files (an over-estimate: a call that might run counts).
"""

from __future__ import annotations

import ast
import fnmatch
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tests.support import ROOT

# The names the project gives boto3 clients, and their services (botocore's names).
CLIENT_NAMES = {
    "sagemaker": "sagemaker",
    "_sagemaker": "sagemaker",
    "s3": "s3",
    "sts": "sts",
    "cloudformation": "cloudformation",
    "autoscaling": "application-autoscaling",
    "runtime": "sagemaker-runtime",
    "cloudwatch": "cloudwatch",
}
# Client methods that send no request themselves (get_paginator's operation is taken from its argument).
LOCAL_METHODS = frozenset({"get_paginator", "get_waiter", "can_paginate", "close"})
# S3 operations authorised by an action of another name ("Required permissions for Amazon S3 API operations",
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-with-s3-policy-actions.html).
S3_ACTIONS = {
    "ListObjectsV2": ("s3:ListBucket",),
    "ListObjects": ("s3:ListBucket",),
    "ListObjectVersions": ("s3:ListBucketVersions",),
    "HeadObject": ("s3:GetObject",),
    "HeadBucket": ("s3:ListBucket",),
    "CopyObject": ("s3:GetObject", "s3:PutObject"),  # the source is read, the copy written
    "CreateMultipartUpload": ("s3:PutObject",),
    "UploadPart": ("s3:PutObject",),
    "CompleteMultipartUpload": ("s3:PutObject",),
}
# boto3's managed transfers (boto3.s3.transfer): HeadObject and GetObject to download, PutObject or a
# multipart upload (all s3:PutObject) to upload.
TRANSFERS = {
    ("s3", "download_file"): ("s3:GetObject",),
    ("s3", "download_fileobj"): ("s3:GetObject",),
    ("s3", "upload_file"): ("s3:PutObject",),
    ("s3", "upload_fileobj"): ("s3:PutObject",),
}
# "No permissions are required to perform this operation" (AWS STS API Reference, GetCallerIdentity).
NO_PERMISSION = frozenset({("sts", "GetCallerIdentity")})
# Services whose IAM action prefix is not their signing name.
IAM_PREFIXES = {"monitoring": "cloudwatch"}
# Reading a given version is s3:GetObjectVersion (the S3 permissions page above).
_VERSIONED = frozenset({"GetObject", "HeadObject", "CopyObject"})


class UnknownCall(AssertionError):
    """A client method that its service does not have: the name is not the client it seems."""


@dataclass(frozen=True)
class Call:
    service: str  # botocore's name, e.g. "sagemaker-runtime"
    method: str  # the client's method, e.g. "invoke_endpoint"
    actions: tuple[str, ...]  # the IAM actions it needs, e.g. ("sagemaker:InvokeEndpoint",)
    where: str  # path:line


@dataclass(frozen=True)
class Need:
    """An action AWS performs with the role's credentials, or needs of the caller, and where AWS says so."""

    action: str
    source: str  # the documentation page: its title and address
    why: str


class UnusedGrant(UserWarning):
    """A role allows an action that no code it runs calls and that AWS does not document as used for it."""


# Botocore's service models.


@cache
def _model(service: str):
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


@cache
def _operations(service: str) -> dict[str, str]:
    from botocore import xform_name

    return {xform_name(name): name for name in _model(service).operation_names}


def actions_of(service: str, method: str, *, versioned: bool = False) -> tuple[str, ...]:
    """The IAM actions a client method needs; UnknownCall when the service has no such method."""
    if (service, method) in TRANSFERS:
        return TRANSFERS[(service, method)]
    operation = _operations(service).get(method)
    if operation is None:
        raise UnknownCall(f"{service} has no method {method!r}")
    if (service, operation) in NO_PERMISSION:
        return ()
    # The IAM prefix is the signing name (sagemaker-runtime signs as sagemaker), but CloudWatch signs as "monitoring"
    # and its actions are cloudwatch:* ("Actions, resources, and condition keys for Amazon CloudWatch").
    signing = _model(service).signing_name
    prefix = IAM_PREFIXES.get(signing, signing)
    if service == "s3":
        found = S3_ACTIONS.get(operation, (f"s3:{operation}",))
        return (*found, "s3:GetObjectVersion") if versioned and operation in _VERSIONED else found
    return (f"{prefix}:{operation}",)


# Reading the source.


def _last_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _made_client(node: ast.AST) -> str | None:
    """The service of `<anything>.client("service")`."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "client"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return node.args[0].value
    return None


def _walk_body(node: ast.AST) -> Iterator[ast.AST]:
    """Every node of a function or module body, without the function's own decorators."""
    parts = node.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Module) else [node]
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        parts = [*node.args.defaults, *node.args.kw_defaults, *node.body]
    for part in parts:
        if part is not None:
            yield from ast.walk(part)


def calls_in(node: ast.AST, where: str) -> list[Call]:
    """The AWS calls in a function (or module) body; `where` is its file, relative to the repository."""
    bound = {}
    for sub in _walk_body(node):
        if isinstance(sub, ast.Assign) and len(sub.targets) == 1 and isinstance(sub.targets[0], ast.Name):
            service = _made_client(sub.value)
            if service:
                bound[sub.targets[0].id] = service
    mentions_version = any(isinstance(sub, ast.Constant) and sub.value == "VersionId" for sub in _walk_body(node))
    found = []
    for sub in _walk_body(node):
        if not (isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute)):
            continue
        receiver, method = sub.func.value, sub.func.attr
        name = _last_name(receiver)
        service = _made_client(receiver) or bound.get(name or "") or CLIENT_NAMES.get(name or "")
        if service is None:
            continue
        if method == "get_paginator":
            if not (sub.args and isinstance(sub.args[0], ast.Constant)):
                raise UnknownCall(f"{where}:{sub.lineno}: get_paginator needs the operation's name as a literal")
            method = sub.args[0].value
        elif method in LOCAL_METHODS:
            continue
        keywords = {k.arg for k in sub.keywords}
        versioned = "VersionId" in keywords or (method == "copy_object" and mentions_version)
        try:
            actions = actions_of(service, method, versioned=versioned)
        except UnknownCall as exc:
            raise UnknownCall(f"{where}:{sub.lineno}: {exc} (is `{ast.unparse(receiver)}` a {service} client?)") from None
        found.append(Call(service, method, actions, f"{where}:{sub.lineno}"))
    return found


@dataclass
class _Module:
    name: str  # dotted: containers.deploy.deploy
    relative: str  # containers/deploy/deploy.py
    tree: ast.Module
    functions: dict[str, ast.AST]  # "handler", "AwsBackend.deploy"
    classes: set[str]
    imports: dict[str, tuple[str, str | None]]  # local name -> (module, name in it or None for the module)


def _parse(path: Path, root: Path) -> _Module:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    functions: dict[str, ast.AST] = {}
    classes = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            functions[node.name] = node
        elif isinstance(node, ast.ClassDef):
            classes.add(node.name)
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    functions[f"{node.name}.{item.name}"] = item
    name = ".".join(path.relative_to(root).with_suffix("").parts)
    imports: dict[str, tuple[str, str | None]] = {}
    for node in ast.walk(tree):  # imports inside functions count too: the CLI imports where it needs
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    imports[alias.asname] = (alias.name, None)
                elif "." not in alias.name:
                    imports[alias.name] = (alias.name, None)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parents = name.split(".")[: -node.level]
                base = ".".join([*parents, *([node.module] if node.module else [])])
            for alias in node.names:
                imports[alias.asname or alias.name] = (base, alias.name)
    return _Module(name, path.relative_to(root).as_posix(), tree, functions, classes, imports)


class Program:
    """Python files that run together (a Lambda's folder, the CLI), to follow calls from entry points."""

    def __init__(self, paths: Iterable[Path], root: Path = ROOT):
        self.modules = {module.name: module for module in (_parse(path, root) for path in sorted(set(paths)))}
        if not self.modules:
            raise ValueError("a program needs at least one file")
        self.methods: dict[str, list[tuple[str, str]]] = {}
        for module in self.modules.values():
            for qualname in module.functions:
                if "." in qualname:
                    self.methods.setdefault(qualname.split(".", 1)[1], []).append((module.name, qualname))

    def module(self, relative: str) -> _Module:
        for module in self.modules.values():
            if module.relative == relative:
                return module
        raise KeyError(f"{relative} is not one of the program's files: {sorted(m.relative for m in self.modules.values())}")

    def _named(self, module_name: str, name: str) -> Iterator[tuple[str, str]]:
        """A module's function `name`, or the constructor of its class `name`."""
        module = self.modules.get(module_name)
        if module is None:
            return
        if name in module.functions:
            yield module.name, name
        elif name in module.classes:
            yield from ((module.name, q) for q in (f"{name}.__init__", f"{name}.__post_init__") if q in module.functions)

    def _module_alias(self, module: _Module, name: str) -> str | None:
        """The program's module that `name` stands for in `module`: `import x as name`, `from x import name`, or
        `import name` of a sibling (a Lambda's folder is its code's root: `import deploy` beside champion.py)."""
        target, attribute = module.imports.get(name, ("", ""))
        package = module.name.rsplit(".", 1)[0]
        candidates = [target, f"{package}.{target}"] if attribute is None else [f"{target}.{attribute}"]
        return next((candidate for candidate in candidates if candidate in self.modules), None)

    def references(self, module: _Module, qualname: str | None, node: ast.AST) -> Iterator[tuple[str, str]]:
        """The program's functions that a body refers to (called or passed on)."""
        owner = qualname.split(".")[0] if qualname and "." in qualname else None
        for sub in _walk_body(node):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load):
                yield from self._named(module.name, sub.id)
                target, attribute = module.imports.get(sub.id, ("", None))
                if attribute is not None:
                    yield from self._named(target, attribute)
            elif isinstance(sub, ast.Attribute):
                base = sub.value.id if isinstance(sub.value, ast.Name) else None
                alias = self._module_alias(module, base) if base else None
                if alias:
                    yield from self._named(alias, sub.attr)
                elif base in ("self", "cls") and owner and f"{owner}.{sub.attr}" in module.functions:
                    yield module.name, f"{owner}.{sub.attr}"
                else:
                    yield from self.methods.get(sub.attr, [])

    def calls(self, *entries: str) -> list[Call]:
        """The AWS calls reachable from `entries`: "path" (a whole file: its module-level code and every function)
        or "path:function" / "path:Class.method"."""
        todo: deque[tuple[str, str | None]] = deque()
        for entry in entries:
            relative, _, qualname = entry.partition(":")
            module = self.module(relative)
            if qualname and qualname not in module.functions:
                raise KeyError(f"{relative} has no function {qualname}")
            todo.extend([(module.name, qualname)] if qualname else [(module.name, None), *((module.name, q) for q in module.functions)])
        seen: set[tuple[str, str | None]] = set()
        found: list[Call] = []
        while todo:
            item = todo.popleft()
            if item in seen:
                continue
            seen.add(item)
            module_name, qualname = item
            module = self.modules[module_name]
            node = module.functions[qualname] if qualname else _module_level(module.tree)
            found += calls_in(node, module.relative)
            todo.extend(self.references(module, qualname, node))
        return sorted(set(found), key=lambda call: (call.where, call.method))


def _module_level(tree: ast.Module) -> ast.Module:
    """A module without its function and class bodies: what runs on import."""
    return ast.Module(body=[n for n in tree.body if not isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)], type_ignores=[])


def python_files(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


# The template's side.

# AWS managed policies a stack attaches, by name: their actions ("AWS managed policy reference",
# https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSLambdaBasicExecutionRole.html).
AWS_MANAGED = {"service-role/AWSLambdaBasicExecutionRole": ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")}


def resources_of(template: Mapping, kind: str) -> dict[str, dict]:
    return {name: body for name, body in template["Resources"].items() if body["Type"] == kind}


def logical_id(template: Mapping, kind: str, fragment: str) -> str:
    found = [name for name in resources_of(template, kind) if fragment in name]
    if len(found) != 1:
        raise KeyError(f"{len(found)} {kind} resources have {fragment!r} in their logical id: {found}")
    return found[0]


def _statements(document: Mapping) -> list[dict]:
    statements = document["Statement"]
    return [statements] if isinstance(statements, dict) else list(statements)


def _managed_name(arn) -> str:
    """The name of an AWS managed policy from its ARN (a string or CDK's Fn::Join with the partition)."""
    text = arn if isinstance(arn, str) else "".join(part for part in arn["Fn::Join"][1] if isinstance(part, str))
    if ":iam::aws:policy/" not in text:
        raise ValueError(f"not an AWS managed policy: {arn}")
    return text.split(":iam::aws:policy/", 1)[1]


def role_statements(template: Mapping, role: str) -> list[dict]:
    """Every policy statement that applies to the role `role` (a logical id): its inline policies, the
    AWS::IAM::Policy and AWS::IAM::ManagedPolicy resources attached to it, and AWS managed policies (by AWS_MANAGED)."""
    body = template["Resources"][role]["Properties"]
    found = [s for policy in body.get("Policies", []) for s in _statements(policy["PolicyDocument"])]
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for policy in resources_of(template, kind).values():
            if {"Ref": role} in policy["Properties"].get("Roles", []):
                found += _statements(policy["Properties"]["PolicyDocument"])
    for arn in body.get("ManagedPolicyArns", []):
        name = _managed_name(arn)
        if name not in AWS_MANAGED:
            raise KeyError(f"{role} has the AWS managed policy {name}: add its actions to AWS_MANAGED")
        found.append({"Effect": "Allow", "Action": list(AWS_MANAGED[name]), "Resource": "*"})
    return found


def policy_statements(template: Mapping, policy: str) -> list[dict]:
    """The statements of one policy resource (a logical id)."""
    return _statements(template["Resources"][policy]["Properties"]["PolicyDocument"])


def allowed_actions(statements: Iterable[Mapping]) -> set[str]:
    """The action patterns that Allow statements name (NotAction, which allows all but some, is refused)."""
    found = set()
    for statement in statements:
        if "NotAction" in statement:
            raise ValueError(f"statement {statement.get('Sid', '')} uses NotAction: list the actions instead")
        if statement["Effect"] == "Allow":
            action = statement["Action"]
            found.update([action] if isinstance(action, str) else action)
    return found


def allows(patterns: Iterable[str], action: str) -> bool:
    """Whether an action matches an allowed pattern (IAM's `*` and `?`, case-insensitive as IAM's actions are)."""
    return any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in patterns)


# The verdict.


def implied(actions: Iterable[str], rules: Mapping[str, Iterable[Need]]) -> list[Need]:
    """The needs that `rules` (action pattern -> needs) attach to `actions`, followed to their own needs."""
    found: dict[str, Need] = {}
    todo = deque(actions)
    while todo:
        action = todo.popleft()
        for pattern, needs in rules.items():
            if fnmatch.fnmatchcase(action, pattern):
                for need in needs:
                    if need.action not in found:
                        found[need.action] = need
                        todo.append(need.action)
    return list(found.values())


def check_role(role: str, allowed: set[str], calls: Iterable[Call], needs: Iterable[Need] = ()) -> list[str]:
    """Fail when `role` does not allow an action that a call or an AWS need requires, naming each; warn (UnusedGrant)
    of each allowed action that none requires. Returns the unused patterns."""
    calls, needs = list(calls), list(needs)
    missing = [
        f"{call.where}: {call.method} needs {action}, which {role} does not allow"
        for call in calls
        for action in call.actions
        if not allows(allowed, action)
    ]
    missing += [
        f"AWS needs {need.action} for {need.why} ({need.source}), which {role} does not allow" for need in needs if not allows(allowed, need.action)
    ]
    if missing:
        raise AssertionError("\n".join(sorted(set(missing))))
    required = {action for call in calls for action in call.actions} | {need.action for need in needs}
    unused = sorted(pattern for pattern in allowed if not any(allows([pattern], action) for action in required))
    for pattern in unused:
        warnings.warn(UnusedGrant(f"{role} allows {pattern}, which no code it runs calls and AWS does not document as used for it"), stacklevel=2)
    return unused
