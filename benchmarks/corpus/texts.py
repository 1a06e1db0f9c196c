"""What the corpus talkers say, in which language and with which espeak-ng voices.

Two disjoint draws share this table: the tuning corpus (``main``) and the held-out corpus
(``heldout``). Each has its own texts and its own voice variants, so no clip, text or voice of one
occurs in the other. Per language and draw:

* ``greet``, ``bot``: the bot's greetings and its other turns;
* ``caller``: ordinary caller utterances (replies, long barge-ins);
* ``low``: utterances for low-pitched callers whose first word starts with a nasal or a voiced
  fricative (/m/, /z/): the onsets an energy gate finds hardest to tell from a low echo;
* ``backchannel``: "uh-huh" and its kin, said while the bot talks; not a barge-in;
* ``short``: one- or two-word real barge-ins ("stop", "wait").

:data:`SPOKEN` gives espeak-ng phoneme input (``[[...]]``) for the few texts it would otherwise
read as silence or spell out (Hebrew words with resh or he, "mm-hmm"); the text itself is what
the index and the labels record.
"""

# ruff: noqa: RUF001 - Cyrillic, Hebrew and Arabic text is the point of this table

from __future__ import annotations

from dataclasses import dataclass

#: What espeak-ng is given for a text it cannot read as written.
SPOKEN: dict[str, str] = {
    "uh-huh": "uh huh",
    "mm-hmm": "[[@m'h@m]]",
    "בסדר": "[[b@s'eder]]",
    "עצור.": "[[ats'or]]",
    "רגע.": "[[r'ega]]",
    "אהה": "[[a'ha]]",
    "חכה.": "[[xak'e]]",
    "רגע אחד.": "[[r'ega eH'ad]]",
}

#: The roles of a clip, in the order the generator synthesizes them.
ROLES = ("greet", "bot", "caller", "low", "backchannel", "short")


@dataclass(frozen=True, slots=True)
class Draw:
    """One draw's texts of one language, per role, and its voices."""

    voice: str  # espeak-ng language voice, e.g. "en-us", "he"
    bot_variants: tuple[str, ...]
    caller_variants: tuple[str, ...]
    texts: dict[str, tuple[str, ...]]


def _draw(voice: str, bots: str, callers: str, **texts: tuple[str, ...]) -> Draw:
    """A :class:`Draw` from space-separated variant lists and the texts per role."""
    assert set(texts) == set(ROLES), voice
    return Draw(voice, tuple(bots.split()), tuple(callers.split()), texts)


# Voice variants: the tuning draw and the held-out draw use disjoint sets.
_MAIN_BOTS = "f2 f3 m3"
_MAIN_CALLERS = "m1 m2 f1 f4"
_HELD_BOTS = "m6 belinda"
_HELD_CALLERS = "m8 max steph linda"

LANGUAGES: dict[str, dict[str, Draw]] = {
    "en": {
        "main": _draw(
            "en-us",
            _MAIN_BOTS,
            _MAIN_CALLERS,
            greet=(
                "Thanks for calling Bright Smile Dental, this is Ava. How can I help you today?",
                "Hello, you have reached City Plumbing. I am the virtual assistant.",
                "Good morning, Northside Clinic, how may I help you?",
            ),
            bot=(
                "Sure, I can help with that. Can I have your full name, please?",
                "Let me check the calendar. We have an opening on Tuesday at ten thirty.",
                "Okay, and what is the best phone number to reach you on?",
                "I have booked the appointment for Thursday at three o'clock.",
                "I am sorry, I did not quite catch that. Could you say it again?",
            ),
            caller=(
                "Hello?",
                "Yes, that is right.",
                "No, that is not what I meant.",
                "Can you repeat that please?",
                "I want to cancel my appointment.",
                "Actually, can we do Wednesday instead?",
                "I need to talk to a real person.",
                "Hi, I'm calling about my bill.",
            ),
            low=("Maybe later.", "Zero four two, one one nine.", "My name is Mark Nolan."),
            backchannel=("uh-huh", "okay", "mm-hmm"),
            short=("Stop.", "Wait.", "No."),
        ),
        "heldout": _draw(
            "en-gb",
            _HELD_BOTS,
            _HELD_CALLERS,
            greet=(
                "Hi, you are through to Harbour View Hotel reservations. How can I help?",
                "Good afternoon, Sunny Day Pet Clinic, the automated line speaking.",
            ),
            bot=(
                "I have a table for four at eight tonight. Shall I book it?",
                "Your parcel left our depot this morning and should arrive by five.",
                "I can email you the invoice, or read it out to you now.",
            ),
            caller=(
                "Tomorrow evening suits me.",
                "Is the parking free?",
                "Please send it by email.",
                "I didn't get the last part.",
            ),
            low=("Monday would be better.", "Zack Miller, calling about the bill."),
            backchannel=("yeah", "right"),
            short=("Hold on.", "Hang on."),
        ),
    },
    "he": {
        "main": _draw(
            "he",
            _MAIN_BOTS,
            _MAIN_CALLERS,
            greet=(
                "שלום, הגעתם למרפאת השיניים חיוך בהיר. איך אפשר לעזור?",
                "בוקר טוב, כאן העוזר הדיגיטלי של העירייה. במה אוכל לעזור לך היום?",
            ),
            bot=(
                "בטח, אני יכול לעזור בזה. מה השם המלא שלך, בבקשה?",
                "יש לנו תור פנוי ביום שלישי בעשר וחצי בבוקר.",
                "המשרד פתוח מיום ראשון עד חמישי, משמונה בבוקר עד שש בערב.",
            ),
            caller=(
                "אני רוצה לבטל את התור שלי.",
                "שלום, אני מתקשר בקשר לחשבון.",
                "אפשר לדבר עם נציג אנושי?",
                "יום רביעי מתאים לי יותר.",
                "כמה זה עולה?",
            ),
            low=("מה?", "זה לא מה שביקשתי."),
            backchannel=("כן", "בסדר"),
            short=("עצור.", "רגע.", "לא."),
        ),
        "heldout": _draw(
            "he",
            _HELD_BOTS,
            _HELD_CALLERS,
            greet=("שלום וברוכים הבאים לשירות המוניות של העיר.",),
            bot=(
                "הנהג יגיע בעוד כשתים עשרה דקות.",
                "אני יכול להעביר אותך לנציג או לרשום הודעה.",
            ),
            caller=("אני צריך לשנות את הכתובת.", "לא שמעתי, אפשר לחזור על זה?", "תודה, זה הכל."),
            low=("מתי הנהג מגיע?", "זמן ההמתנה ארוך מדי."),
            backchannel=("אהה", "נכון"),
            short=("חכה.", "רגע אחד."),
        ),
    },
    "ar": {
        "main": _draw(
            "ar",
            _MAIN_BOTS,
            _MAIN_CALLERS,
            greet=(
                "مرحبا، لقد اتصلت بعيادة الأسنان. كيف يمكنني مساعدتك؟",
                "صباح الخير، معك المساعد الآلي لشركة التأمين.",
            ),
            bot=(
                "بالتأكيد، ما هو اسمك الكامل من فضلك؟",
                "لدينا موعد متاح يوم الثلاثاء في الساعة العاشرة والنصف صباحا.",
                "المكتب مفتوح من الأحد إلى الخميس.",
            ),
            caller=(
                "أريد أن ألغي موعدي.",
                "أتصل بخصوص الفاتورة.",
                "هل يمكنني التحدث مع موظف؟",
                "يوم الأربعاء أفضل لي.",
                "كم التكلفة؟",
            ),
            low=("ما هذا؟", "زوجتي حجزت الموعد."),
            backchannel=("نعم", "أيوه"),
            short=("توقف.", "انتظر.", "لا."),
        ),
        "heldout": _draw(
            "ar",
            _HELD_BOTS,
            _HELD_CALLERS,
            greet=("أهلا بك في خدمة سيارات الأجرة.",),
            bot=(
                "سيصل السائق بعد حوالي اثنتي عشرة دقيقة.",
                "يمكنني تحويلك إلى موظف أو ترك رسالة.",
            ),
            caller=("أريد تغيير العنوان.", "لم أسمع، هل يمكنك التكرار؟", "شكرا، هذا كل شيء."),
            low=("متى يصل السائق؟", "زميلي طلب السيارة."),
            backchannel=("طيب", "تمام"),
            short=("لحظة.", "مهلا."),
        ),
    },
    "ru": {
        "main": _draw(
            "ru",
            _MAIN_BOTS,
            _MAIN_CALLERS,
            greet=(
                "Здравствуйте, вы позвонили в стоматологию Белая улыбка. Чем могу помочь?",
                "Добрый день, это виртуальный помощник страховой компании.",
            ),
            bot=(
                "Конечно, я помогу. Назовите, пожалуйста, ваше полное имя.",
                "Есть свободное время во вторник в половине одиннадцатого.",
                "Офис работает с понедельника по пятницу с восьми до шести.",
            ),
            caller=(
                "Я хочу отменить запись.",
                "Я звоню по поводу счёта.",
                "Можно поговорить с оператором?",
                "Среда мне подходит больше.",
                "Сколько это стоит?",
            ),
            low=("Может быть, позже.", "Зачем это нужно?"),
            backchannel=("да", "ага"),
            short=("Стоп.", "Подождите.", "Нет."),
        ),
        "heldout": _draw(
            "ru",
            _HELD_BOTS,
            _HELD_CALLERS,
            greet=("Добро пожаловать в службу такси.",),
            bot=(
                "Водитель приедет примерно через двенадцать минут.",
                "Я могу соединить вас с сотрудником или принять сообщение.",
            ),
            caller=(
                "Мне нужно изменить адрес.",
                "Я не расслышал, повторите, пожалуйста.",
                "Спасибо, это всё.",
            ),
            low=("Мне нужна машина на завтра.", "Запишите мой номер."),
            backchannel=("угу", "хорошо"),
            short=("Стойте.", "Минутку."),
        ),
    },
    "es": {
        "main": _draw(
            "es",
            _MAIN_BOTS,
            _MAIN_CALLERS,
            greet=(
                "Gracias por llamar a Clínica Dental Sonrisa. ¿En qué puedo ayudarle?",
                "Buenos días, soy el asistente virtual de Seguros Hoja Verde.",
            ),
            bot=(
                "Claro, puedo ayudarle con eso. ¿Me dice su nombre completo, por favor?",
                "Tenemos un hueco el martes a las diez y media de la mañana.",
                "La oficina abre de lunes a viernes, de ocho a seis.",
            ),
            caller=(
                "Quiero cancelar mi cita.",
                "Llamo por mi factura.",
                "¿Puedo hablar con una persona?",
                "El miércoles me viene mejor.",
                "¿Cuánto cuesta?",
            ),
            low=("Mañana no puedo.", "Mi nombre es Manuel."),
            backchannel=("sí", "vale"),
            short=("Para.", "Espere.", "No."),
        ),
        "heldout": _draw(
            "es",
            _HELD_BOTS,
            _HELD_CALLERS,
            greet=("Bienvenido al servicio de taxis de la ciudad.",),
            bot=(
                "El conductor llegará en unos doce minutos.",
                "Puedo pasarle con un compañero o tomar un mensaje.",
            ),
            caller=(
                "Necesito cambiar la dirección.",
                "No le he oído, ¿puede repetir?",
                "Gracias, eso es todo.",
            ),
            low=("Mi hija pidió el taxi.", "Me llamo Marta."),
            backchannel=("claro", "ajá"),
            short=("Un momento.", "Alto."),
        ),
    },
    "de": {
        "main": _draw(
            "de",
            _MAIN_BOTS,
            _MAIN_CALLERS,
            greet=(
                "Danke für Ihren Anruf bei der Zahnarztpraxis Lächeln. Wie kann ich helfen?",
                "Guten Morgen, hier ist der digitale Assistent der Grünblatt Versicherung.",
            ),
            bot=(
                "Gern helfe ich Ihnen. Wie ist Ihr vollständiger Name, bitte?",
                "Am Dienstag um halb elf ist noch ein Termin frei.",
                "Die Praxis ist Montag bis Freitag von acht bis achtzehn Uhr geöffnet.",
            ),
            caller=(
                "Ich möchte meinen Termin absagen.",
                "Ich rufe wegen meiner Rechnung an.",
                "Kann ich mit einem Menschen sprechen?",
                "Mittwoch passt mir besser.",
                "Was kostet das?",
            ),
            low=("Sagen Sie das noch mal.", "Mein Name ist Müller."),
            backchannel=("ja", "genau"),
            short=("Stopp.", "Warten Sie.", "Nein."),
        ),
        "heldout": _draw(
            "de",
            _HELD_BOTS,
            _HELD_CALLERS,
            greet=("Willkommen beim Taxiruf der Stadt.",),
            bot=(
                "Der Fahrer ist in etwa zwölf Minuten da.",
                "Ich kann Sie mit einem Kollegen verbinden oder eine Nachricht aufnehmen.",
            ),
            caller=(
                "Ich muss die Adresse ändern.",
                "Das habe ich nicht verstanden, bitte noch einmal.",
                "Danke, das war alles.",
            ),
            low=("Sonntag wäre mir lieber.", "Meine Frau hat angerufen."),
            backchannel=("stimmt", "klar"),
            short=("Moment.", "Halt."),
        ),
    },
    "fr": {
        "main": _draw(
            "fr",
            _MAIN_BOTS,
            _MAIN_CALLERS,
            greet=(
                "Merci d'avoir appelé le cabinet dentaire Sourire. Comment puis-je vous aider?",
                "Bonjour, ici l'assistant virtuel de l'assurance Feuille Verte.",
            ),
            bot=(
                "Bien sûr, je peux vous aider. Quel est votre nom complet, s'il vous plaît?",
                "Nous avons un créneau mardi à dix heures et demie.",
                "Le cabinet est ouvert du lundi au vendredi, de huit heures à dix-huit heures.",
            ),
            caller=(
                "Je voudrais annuler mon rendez-vous.",
                "J'appelle au sujet de ma facture.",
                "Je peux parler à quelqu'un?",
                "Mercredi, ça m'arrange mieux.",
                "Combien ça coûte?",
            ),
            low=("Mais non, pas du tout.", "Zut, j'ai oublié."),
            backchannel=("oui", "d'accord"),
            short=("Arrêtez.", "Attendez.", "Non."),
        ),
        "heldout": _draw(
            "fr",
            _HELD_BOTS,
            _HELD_CALLERS,
            greet=("Bienvenue au service de taxis de la ville.",),
            bot=(
                "Le chauffeur arrivera dans environ douze minutes.",
                "Je peux vous passer un collègue ou prendre un message.",
            ),
            caller=(
                "Je dois changer l'adresse.",
                "Je n'ai pas entendu, vous pouvez répéter?",
                "Merci, c'est tout.",
            ),
            low=("Madame Martin à l'appareil.", "Mon numéro a changé."),
            backchannel=("ouais", "entendu"),
            short=("Une seconde.", "Un instant."),
        ),
    },
    "pt": {
        "main": _draw(
            "pt-br",
            _MAIN_BOTS,
            _MAIN_CALLERS,
            greet=(
                "Obrigado por ligar para a Clínica Sorriso. Como posso ajudar?",
                "Bom dia, aqui é o assistente virtual da Seguros Folha Verde.",
            ),
            bot=(
                "Claro, posso ajudar. Qual é o seu nome completo, por favor?",
                "Temos um horário na terça-feira às dez e meia da manhã.",
                "O consultório abre de segunda a sexta, das oito às seis.",
            ),
            caller=(
                "Quero cancelar a minha consulta.",
                "Estou ligando por causa da fatura.",
                "Posso falar com uma pessoa?",
                "Quarta-feira é melhor para mim.",
                "Quanto custa?",
            ),
            low=("Mas eu já paguei.", "Zero dois um, três quatro."),
            backchannel=("sim", "tá"),
            short=("Pare.", "Espera.", "Não."),
        ),
        "heldout": _draw(
            "pt",
            _HELD_BOTS,
            _HELD_CALLERS,
            greet=("Bem-vindo ao serviço de táxi da cidade.",),
            bot=(
                "O motorista chega em cerca de doze minutos.",
                "Posso transferir para um atendente ou anotar um recado.",
            ),
            caller=("Preciso mudar o endereço.", "Não ouvi, pode repetir?", "Obrigado, é só isso."),
            low=("Meu nome é Marcos.", "Zé Carlos falando."),
            backchannel=("certo", "entendi"),
            short=("Um momento.", "Calma."),
        ),
    },
}
