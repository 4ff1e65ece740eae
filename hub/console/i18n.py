"""Chinese and English. Templates and messages are written in English and wrapped in `_()`;
ZH maps each of those strings to Chinese (a test checks that every string has its translation).

The language is the `hub_lang` cookie (set by the switch in the page header), else the first of
zh / en in the browser's Accept-Language, else Chinese.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"
HTML_LANG = {"zh": "zh-CN", "en": "en"}

Translator = Callable[[str], str]


def negotiate(accept_language: str | None) -> str:
    """zh or en from an Accept-Language header (q-values honoured), else the default."""
    choices: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            choices.append((-quality, position, primary))
    return min(choices)[2] if choices else DEFAULT_LANGUAGE


def language_of(request: Request) -> str:
    chosen = request.cookies.get("hub_lang")
    if chosen in LANGUAGES:
        return chosen
    return negotiate(request.headers.get("accept-language"))


def translator(language: str) -> Translator:
    if language == "zh":
        return lambda text: ZH.get(text, text)
    return lambda text: text


# English -> Chinese. Keep it sorted by page, roughly as the strings appear.
ZH: dict[str, str] = {
    # layout
    "Hub console": "客服中枢控制台",
    "Queues": "队列",
    "Tasks": "任务",
    "Shipments": "运单",
    "Shipment": "运单",
    "Dead letters": "死信",
    "Customers": "客户",
    "Silences": "静默",
    "Reports": "报表",
    "Log out": "退出",
    "Language": "语言",
    "Signed in as": "当前用户",
    "Skip to content": "跳到正文",
    # roles
    "viewer": "查看者",
    "agent": "处理员",
    "supervisor": "主管",
    "admin": "管理员",
    # login
    "Log in": "登录",
    "User name": "用户名",
    "Password": "密码",
    "Wrong user name or password.": "用户名或密码错误。",
    "Too many failed logins: this account is locked until {until}.": "登录失败次数过多：该账号已锁定至 {until}。",
    "This account is disabled.": "该账号已停用。",
    "Your session has ended; please log in again.": "会话已结束，请重新登录。",
    "The form expired; please try again.": "表单已过期，请重试。",
    # queues
    "Handler queues": "处理队列",
    "Live": "实时",
    "Open work per queue and severity": "各队列、各级别的待办",
    "queue": "队列",
    "total": "合计",
    "breached": "已超时升级",
    "overdue": "已逾期",
    "due within 2 h": "2 小时内到期",
    "Breached and soon due": "已升级与即将到期",
    "Newest alerts": "最新告警",
    "published": "已发布",
    "waiting": "待发布",
    "silenced by #{id}": "被静默 #{id} 拦截",
    "No alerts yet.": "暂无告警。",
    "No open tasks.": "没有待办任务。",
    "exceptions": "异常",
    "urgent_orders": "加急订单",
    "complaints": "投诉",
    "escalations": "升级",
    # tasks list
    "Department": "部门",
    "Severity": "级别",
    "Status": "状态",
    "Escalation level": "升级级别",
    "Only overdue": "仅逾期",
    "Filter": "筛选",
    "any": "全部",
    "open and in progress": "待处理与处理中",
    "open": "待处理",
    "in_progress": "处理中",
    "done": "已完成",
    "cancelled": "已取消",
    "Title": "标题",
    "Due": "到期",
    "Held by": "处理人",
    "More tasks match: showing the first {n}; filter further.": "匹配的任务更多：仅显示前 {n} 条，请进一步筛选。",
    "No tasks match.": "没有匹配的任务。",
    "level {n}": "{n} 级",
    "none": "无",
    "{d} overdue": "逾期 {d}",
    "in {d}": "{d} 后到期",
    # departments
    "warehouse": "仓库",
    "carrier_liaison": "承运商联络",
    "claims": "理赔",
    "key_accounts": "大客户",
    "dispatch": "调度",
    "call_centre": "呼叫中心",
    # task page
    "Task": "任务",
    "Kind": "类型",
    "Opened": "开启",
    "Warned": "已预警",
    "Breached": "已超时",
    "Customer": "客户",
    "Rule": "规则",
    "Alert": "告警",
    "Created": "创建",
    "Updated": "更新",
    "Claimed": "认领",
    "Resolved": "解决",
    "Resolution": "处理结果",
    "Details": "详情",
    "History": "历史",
    "When": "时间",
    "Who": "操作人",
    "What": "操作",
    "Claim": "认领",
    "Take over": "接管",
    "Release": "释放",
    "Comment": "备注",
    "Add comment": "添加备注",
    "Reassign": "转派",
    "to department": "转至部门",
    "to person": "转给人员",
    "(keep)": "（不变）",
    "Resolve": "解决",
    "Cancel task": "取消任务",
    "Reopen": "重新打开",
    "Reason": "原因",
    "What was done": "处理结果",
    "Why there is nothing to do": "无需处理的原因",
    "created": "创建",
    "claimed": "认领",
    "released": "释放",
    "commented": "备注",
    "warned": "预警",
    "escalated": "升级",
    "reassigned": "转派",
    "resolved": "解决",
    "reopened": "重新打开",
    "hub": "系统",
    "Task {id} is held by {who} since {when}.": "任务 {id} 已由 {who} 于 {when} 认领。",
    "Done: {action}.": "已完成：{action}。",
    "Not allowed": "无权操作",
    "Not found": "未找到",
    "Refused": "操作被拒绝",
    "Back": "返回",
    # shipment page
    "Find a shipment": "查找运单",
    "Waybill number": "运单号",
    "Show": "查看",
    "Tracking sheet": "跟踪表",
    "Carrier": "承运商",
    "Promised delivery": "承诺送达",
    "Latest ETA": "最新预计送达",
    "after the promise": "晚于承诺",
    "Order": "订单",
    "Priority": "优先级",
    "Last event": "最近事件",
    "No tracking sheet yet: contacts mention it, but no shipment or carrier event has arrived.": (
        "尚无跟踪表：已有联络提及该运单，但尚未收到运单或承运商事件。"
    ),
    "Timeline": "时间线",
    "event": "事件",
    "call": "来电",
    "task": "任务",
    "notification": "通知",
    "attempt": "投递尝试",
    "Notifications": "通知",
    "Channel": "渠道",
    "Nothing yet.": "暂无。",
    "not known yet": "尚未知",
    # dead letters
    "Reason for dead letter": "死信原因",
    "Source": "来源",
    "Message": "信息",
    "Replayed": "已重放",
    "not yet": "尚未",
    "Key": "键",
    "Value": "内容",
    "Headers": "消息头",
    "first {shown} of {total} bytes shown": "显示前 {shown} / {total} 字节",
    "(none: the record was a tombstone)": "（无：该记录为墓碑消息）",
    "Replay to its source topic": "重放到来源主题",
    "Replayed to {topic} partition {partition} offset {offset}.": "已重放至 {topic} 分区 {partition} 偏移 {offset}。",
    "No dead letters.": "没有死信。",
    # customers
    "Search": "搜索",
    "Name": "名称",
    "Tier": "等级",
    "Credit rating": "信用评级",
    "Contacts": "联系方式",
    "Preferred channel": "首选渠道",
    "Account manager": "客户经理",
    "key": "大客户",
    "standard": "标准",
    "Open tasks": "待办任务",
    "CSAT": "满意度",
    "{p}% of {n} answers": "{n} 份答复中 {p}% 满意",
    "no survey answers": "暂无调查答复",
    "Next page": "下一页",
    "Previous page": "上一页",
    "No customers.": "没有客户。",
    # silences
    "New silence": "新建静默",
    "Matcher": "匹配条件",
    "Ends": "结束",
    "Ends in (hours)": "持续（小时）",
    "Author": "创建人",
    "Age": "已持续",
    "Remaining": "剩余",
    "Held back": "已拦截告警",
    "active": "生效中",
    "ended": "已结束",
    "Expire": "立即结束",
    "Create silence": "创建静默",
    "While a silence is active, alerts it matches are recorded (task, notifications, outbox row) but not published on their queue.": (  # noqa: E501
        "静默生效期间，匹配的告警照常记录（任务、通知、发件箱记录），但不会发布到其队列。"
    ),
    "No silences.": "没有静默。",
    "expired by {who}": "由 {who} 提前结束",
    # reports
    "Period": "期间",
    "Format": "格式",
    "View": "查看",
    "Download": "下载",
    "No reports yet.": "暂无报表。",
    # users
    "Users": "用户",
    "Role": "角色",
    "Last login": "最近登录",
    "all": "全部",
    "disabled": "已停用",
    "locked until {until}": "锁定至 {until}",
    "Unlock": "解锁",
    "Disable": "停用",
    "Add users and set passwords with `hub users add` and `hub users passwd` on the command line.": (
        "新增用户和设置密码请在命令行使用 `hub users add` 与 `hub users passwd`。"
    ),
    # errors
    "Forbidden": "禁止访问",
    "You may not do this.": "您无权执行此操作。",
    "Page not found.": "页面不存在。",
}
